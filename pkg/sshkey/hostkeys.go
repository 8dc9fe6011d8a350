package sshkey

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Limits on what is read of a guest's serial log. The guest writes the
// log, so it is hostile input: at most MaxSerialRead bytes are read, a
// line longer than MaxHostKeyLine is skipped whole, a cloud-init block
// longer than maxBlockLines is given up, and at most MaxHostKeys distinct
// keys are kept.
const (
	MaxSerialRead  = 4 << 20
	MaxHostKeyLine = 16 << 10
	MaxHostKeys    = 8
	maxBlockLines  = 32
)

// Markers the two guest kinds print: the tiny image one line per key after
// its boot line, Debian's cloud-init a block between two lines.
const (
	tinyBoot   = "vmd-tiny: booted"
	tinyPrefix = "vmd-tiny: hostkey "
	tinyDone   = "vmd-tiny: hostkeys done" // after its last key line
	ciBegin    = "-----BEGIN SSH HOST KEY KEYS-----"
	ciEnd      = "-----END SSH HOST KEY KEYS-----"
)

// HostKeys reads the host keys a guest printed on its serial console in
// its last boot that printed any: the tiny image's "vmd-tiny: hostkey TYPE
// BASE64" lines and the keys between cloud-init's BEGIN/END SSH HOST KEY
// KEYS lines. Each key is parsed (ssh.ParsePublicKey on the decoded blob,
// whose type must be the one named) and returned re-marshalled as "TYPE
// BASE64", without comment, de-duplicated, at most MaxHostKeys. found
// reports whether the report is complete (the tiny image's done line after
// its key lines, or a block's end), so a caller need not read again this
// boot; before that, keys holds the key lines printed so far (each key is
// a line of its own, and under load seconds apart).
func HostKeys(r io.Reader) (keys []string, found bool) {
	br := bufio.NewReaderSize(io.LimitReader(r, MaxSerialRead), MaxHostKeyLine)
	var (
		seen    map[string]bool
		inBlock bool
		pending []string // the open cloud-init block's keys, kept once it ends
	)
	// A reboot prints the keys again, maybe new ones: a new report
	// replaces the last.
	reset := func() { keys, seen, found = nil, map[string]bool{}, false }
	reset()
	add := func(k string) {
		if k != "" && !seen[k] && len(keys) < MaxHostKeys {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for {
		line, err := readLine(br)
		if err != nil {
			break
		}
		switch {
		case inBlock && strings.Contains(line, ciEnd):
			inBlock = false
			reset()
			for _, k := range pending {
				add(k)
			}
			found = true
		case inBlock:
			if len(pending) >= maxBlockLines {
				inBlock = false // not a block cloud-init would print
				continue
			}
			pending = append(pending, hostKey(line))
		case strings.Contains(line, ciBegin):
			inBlock, pending = true, nil
		case strings.Contains(line, tinyBoot):
			reset()
		case strings.Contains(line, tinyDone):
			found = true
		default:
			if i := strings.Index(line, tinyPrefix); i >= 0 {
				add(hostKey(line[i+len(tinyPrefix):]))
			}
		}
	}
	if len(keys) == 0 {
		keys = nil
	}
	return keys, found
}

// readLine returns the next line without its end, skipping lines longer
// than the reader's buffer whole (a guest's huge line must neither stop
// the scan nor have its tail read as a line of its own).
func readLine(br *bufio.Reader) (string, error) {
	for {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return "", err
			}
			continue
		}
		if err != nil && len(b) == 0 {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}

// hostKey parses "TYPE BASE64 [COMMENT]"; "" when it is not a plain public
// key of the type it names.
func hostKey(s string) string {
	f := strings.Fields(s)
	if len(f) < 2 {
		return ""
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return ""
	}
	pub, err := ssh.ParsePublicKey(blob)
	if err != nil || pub.Type() != f[0] {
		return ""
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return ""
	}
	return fromPublic(pub, "").Authorized
}
