// The VM size limits of pkg/api (MaxCPU, MinMemoryMB, MaxMemoryMB,
// MaxDiskGB); web_test.go fails when these drift from the Go constants.
export const limits = {
  cpu: { min: 1, max: 64 },
  memory_mb: { min: 64, max: 262144 },
  disk_gb: { min: 1, max: 2048 },
};

// A DNS label, as pkg/vm ValidName checks it.
export const namePattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
