// Package version holds pgwarden's version string.
package version

// Version is pgwarden's release; set at build time with
// -ldflags "-X github.com/pgwarden/pgwarden/internal/version.Version=...".
var Version = "0.1.0"
