package share

import "kith/internal/units"

// FormatSize prints a byte count for people, in binary units: "512 B",
// "1.5 KiB", "200.0 MiB" (units.FormatSize, which the CLI uses too).
func FormatSize(n int64) string { return units.FormatSize(n) }
