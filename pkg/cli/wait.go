package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmdhq/vmd/pkg/api"
	"github.com/vmdhq/vmd/pkg/client"
)

// waitCondition is what `--for` asks: a state, the VM being gone, or
// (ready) running with its guest ready.
type waitCondition struct {
	state   api.State
	deleted bool
	ready   bool
}

func (w waitCondition) String() string {
	if w.deleted {
		return "delete"
	}
	if w.ready {
		return "condition=ready"
	}
	return "state=" + string(w.state)
}

// holds reports whether vm is where cond wants it.
func (w waitCondition) holds(vm *api.VM) bool {
	if w.ready {
		return vm.State == api.StateRunning && vm.Ready
	}
	return !w.deleted && vm.State == w.state
}

var knownStates = []api.State{
	api.StatePending, api.StateProvisioning, api.StateStarting, api.StateRunning,
	api.StateStopping, api.StateStopped, api.StateError, api.StateDeleting,
	api.StatePaused,
}

// parseWaitFor reads "state=running" or "delete".
func parseWaitFor(s string) (waitCondition, error) {
	if s == "delete" || s == "deleted" {
		return waitCondition{deleted: true}, nil
	}
	if c, ok := strings.CutPrefix(s, "condition="); ok {
		if c != "ready" {
			return waitCondition{}, flagErrorf("unknown condition %q: the one condition is ready", c)
		}
		return waitCondition{state: api.StateRunning, ready: true}, nil
	}
	v, ok := strings.CutPrefix(s, "state=")
	if !ok {
		return waitCondition{}, flagErrorf("--for must be state=STATE, condition=ready or delete, got %q", s)
	}
	for _, st := range knownStates {
		if string(st) == v {
			return waitCondition{state: st}, nil
		}
	}
	names := make([]string, len(knownStates))
	for i, st := range knownStates {
		names[i] = string(st)
	}
	return waitCondition{}, flagErrorf("unknown state %q: one of %s", v, strings.Join(names, ", "))
}

// WaitOptions are the inputs of vmctl wait.
type WaitOptions struct {
	IO     *IOStreams
	Client func() (*client.Client, error)

	Name     string
	For      waitCondition
	Timeout  time.Duration
	Interval time.Duration
}

// NewCmdWait builds `vmctl wait NAME --for state=running`.
func NewCmdWait(f *Factory, runF func(context.Context, *WaitOptions) error) *cobra.Command {
	opts := &WaitOptions{IO: f.IOStreams, Client: f.Client, Interval: time.Second}
	var forFlag string
	cmd := &cobra.Command{
		Use:   "wait NAME --for state=STATE|condition=ready|delete",
		Short: "Block until a VM reaches a state, is ready or is deleted",
		Long: `Block until a VM reaches a state, is ready or is deleted.

condition=ready waits until the VM runs and its guest is ready: its agent
answers, or (without one) its serial port printed the template's ready line.`,
		Example: `  vmctl wait web --for state=running --timeout 2m
  vmctl wait web --for condition=ready
  vmctl wait web --for delete`,
		Args:              exactArgs(1, "NAME"),
		ValidArgsFunction: completeVMNames(f),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			if forFlag == "" {
				return flagErrorf("--for is required")
			}
			cond, err := parseWaitFor(forFlag)
			if err != nil {
				return err
			}
			opts.For = cond
			if opts.Timeout <= 0 {
				return flagErrorf("--timeout must be positive")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return waitRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&forFlag, "for", "", "condition: state=STATE, condition=ready or delete")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 2*time.Minute, "give up after this long (exit 6)")
	_ = cmd.RegisterFlagCompletionFunc("for", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		out := []string{"delete", "condition=ready"}
		for _, st := range knownStates {
			out = append(out, "state="+string(st))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func waitRun(ctx context.Context, opts *WaitOptions) error {
	c, err := authedClient(opts.Client)
	if err != nil {
		return err
	}
	vm, err := waitForVM(ctx, c, opts.Name, opts.For, opts.Timeout, opts.Interval)
	if err != nil {
		return err
	}
	if opts.For.deleted {
		opts.IO.Infof("vm %s: deleted\n", opts.Name)
	} else if opts.For.ready {
		opts.IO.Infof("vm %s: ready\n", vm.Name)
	} else {
		opts.IO.Infof("vm %s: %s\n", vm.Name, vm.State)
	}
	return nil
}

// waitForVM waits until cond holds on the change feed: it opens the feed,
// reads the VM's current state, then follows its changes. It fails with a
// *TimeoutError after timeout, at once when the VM is gone (unless waiting
// for that) or lands in state error, and retries through network and
// server errors; the feed itself resumes where it broke off. Against a vmd
// without GET /events it falls back to polling every interval. The last VM
// seen is returned with a timeout.
func waitForVM(ctx context.Context, c *client.Client, ref string, cond waitCondition, timeout, interval time.Duration) (*api.VM, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *api.VM
	var lastErr error
	for {
		vm, done, err := waitOnFeed(wctx, c, ref, cond, &last)
		switch {
		case done:
			return vm, err
		case client.IsNotFound(err):
			// a vmd from before the change feed
			return pollForVM(ctx, c, ref, cond, timeout, interval)
		case ctx.Err() != nil:
			return last, ctx.Err()
		case err != nil && !errors.Is(err, context.DeadlineExceeded):
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-wctx.Done():
			return last, waitTimeout(ref, cond, timeout, last, lastErr)
		case <-time.After(interval):
		}
	}
}

func waitTimeout(ref string, cond waitCondition, timeout time.Duration, last *api.VM, lastErr error) error {
	te := &TimeoutError{What: fmt.Sprintf("vm %s to reach %s after %s", ref, cond, timeout)}
	if last != nil {
		te.What += fmt.Sprintf(" (last state %s)", last.State)
	} else if lastErr != nil {
		te.What += fmt.Sprintf(" (last error: %v)", lastErr)
	}
	return te
}

// waitOnFeed is one attempt of waitForVM. done means the wait is over with
// the returned VM and error; otherwise err is worth a retry (nil when the
// deadline passed). A not-found error for the feed itself means the server
// has none.
func waitOnFeed(ctx context.Context, c *client.Client, ref string, cond waitCondition, last **api.VM) (*api.VM, bool, error) {
	// The stream lives as long as this attempt.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The feed opens first, so no change after the GET below is missed.
	stream, err := c.OpenEvents(ctx, client.FromNow, false)
	if err != nil {
		if fatalWaitError(err) {
			return *last, true, err
		}
		return nil, false, err
	}
	defer stream.Close()
	vm, err := c.GetVM(ctx, ref)
	switch {
	case err == nil:
		*last = vm
	case client.IsNotFound(err):
		if cond.deleted {
			return *last, true, nil
		}
		return *last, true, err
	case fatalWaitError(err):
		return *last, true, err
	default:
		return nil, false, err
	}
	if done, err := vmMeets(vm, cond); done {
		return vm, true, err
	}
	for ch := range stream.Changes() {
		if ch.VMID != vm.ID {
			continue
		}
		if ch.State == api.StateDeleted {
			if cond.deleted {
				return vm, true, nil
			}
			return vm, true, fmt.Errorf("vm %s was deleted while waiting for %s", vm.Name, cond)
		}
		vm.State, vm.DesiredState, vm.Message, vm.UpdatedAt, vm.Ready = ch.State, ch.DesiredState, ch.Message, ch.Time, ch.Ready
		if done, err := vmMeets(vm, cond); done {
			if err == nil {
				// The full record, with its events, for whoever prints it.
				if full, gerr := c.GetVM(ctx, vm.ID); gerr == nil && cond.holds(full) {
					vm = full
				}
			}
			*last = vm
			return vm, true, err
		}
	}
	err = stream.Err()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return nil, false, nil
	}
	return *last, true, err
}

// vmMeets reports whether a wait for cond is over with vm as it is: the
// state is reached, or the VM failed on the way.
func vmMeets(vm *api.VM, cond waitCondition) (bool, error) {
	if cond.deleted {
		return false, nil
	}
	if cond.holds(vm) {
		return true, nil
	}
	if vm.State == api.StateError {
		msg := vm.Message
		if msg == "" {
			msg = "no message"
		}
		return true, fmt.Errorf("vm %s is in state error while waiting for %s: %s", vm.Name, cond, msg)
	}
	return false, nil
}

// fatalWaitError is an answer that another try will not change.
func fatalWaitError(err error) bool {
	return client.HasCode(err, api.CodeUnauthenticated, api.CodeForbidden, api.CodeEmailUnverified, api.CodeValidation, api.CodeBadRequest)
}

// pollForVM polls GET /vms/{ref} every interval until cond holds. It fails
// with a *TimeoutError after timeout, at once when the VM is gone (unless
// waiting for that) or lands in state error, and retries through network
// and server errors. The last VM seen is returned with a timeout.
func pollForVM(ctx context.Context, c *client.Client, ref string, cond waitCondition, timeout, interval time.Duration) (*api.VM, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last *api.VM
	var lastErr error
	for {
		vm, err := c.GetVM(wctx, ref)
		switch {
		case err == nil:
			last = vm
			if cond.holds(vm) {
				return vm, nil
			}
			if vm.State == api.StateError && !cond.deleted {
				msg := vm.Message
				if msg == "" {
					msg = "no message"
				}
				return vm, fmt.Errorf("vm %s is in state error while waiting for %s: %s", vm.Name, cond, msg)
			}
		case client.IsNotFound(err):
			if cond.deleted {
				return last, nil
			}
			return last, err
		case ctx.Err() != nil:
			return last, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			// the request itself ran into our own deadline
		case client.HasCode(err, api.CodeUnauthenticated, api.CodeForbidden, api.CodeEmailUnverified, api.CodeValidation, api.CodeBadRequest):
			return last, err
		default:
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-wctx.Done():
			return last, waitTimeout(ref, cond, timeout, last, lastErr)
		case <-time.After(interval):
		}
	}
}
