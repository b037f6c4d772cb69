//go:build tools

// Package peers pins the reference tunnels the benchmark runs next to
// pipeops-tunnel (built by ../lib/peers.ts into ../.cache/bin). Nothing here
// is linked into the project.
package peers

import _ "github.com/jpillora/chisel"
