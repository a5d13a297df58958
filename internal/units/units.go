// Package units prints sizes for people. The share package and the CLI
// (through package node/api) both show byte counts the same way.
package units

import "fmt"

// FormatSize prints a byte count for people, in binary units: "512 B",
// "1.5 KiB", "200.0 MiB".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
