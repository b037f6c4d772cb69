// Command yamux-peer is the reference peer for @pipeops/tunnel-mux interop
// tests: one hashicorp/yamux session over one TCP connection, driven by a
// named scenario. It reads nothing but its flags, reports on stdout (one line
// per event: LISTEN addr, OK, RTT ms, RST id, GOAWAY) and exits non-zero with a message
// on stderr on any failure.
//
//	yamux-peer -role server -scenario echo            # prints "LISTEN 127.0.0.1:PORT"
//	yamux-peer -role client -addr HOST:PORT -scenario echo-open 4 67108864
package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

func main() {
	role := flag.String("role", "", "client (dial -addr) or server (listen on 127.0.0.1:0)")
	addr := flag.String("addr", "", "host:port to dial (client role)")
	scenario := flag.String("scenario", "", "echo | echo-open N SIZE | rst | goaway | ping")
	window := flag.Uint("window", 256*1024, "MaxStreamWindowSize in bytes")
	pingFirst := flag.Bool("ping-first", false, "one ping round trip before the scenario (orders it after the far side's first frames)")
	flag.Parse()

	if err := run(*role, *addr, *scenario, uint32(*window), *pingFirst, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "yamux-peer: %s: %v\n", *scenario, err)
		os.Exit(1)
	}
}

func run(role, addr, scenario string, window uint32, pingFirst bool, args []string) error {
	cfg := yamux.DefaultConfig()
	cfg.MaxStreamWindowSize = window
	cfg.LogOutput = os.Stderr
	if scenario == "rst" {
		// v0.1.2 has no public Stream.Reset(). Its only RST a caller can
		// trigger is the close timeout: Close() sends FIN and, if no FIN comes
		// back within StreamCloseTimeout, sends RST. A peer that keeps writing
		// never sends FIN, so a tiny timeout turns Close() into FIN+RST.
		cfg.StreamCloseTimeout = time.Millisecond
	}

	sess, err := connect(role, addr, cfg)
	if err != nil {
		return err
	}
	defer sess.Close()
	if pingFirst {
		if _, err := sess.Ping(); err != nil {
			return fmt.Errorf("ping: %w", err)
		}
	}

	switch scenario {
	case "echo":
		return echo(sess)
	case "echo-open":
		if len(args) != 2 {
			return errors.New("usage: -scenario echo-open N SIZE")
		}
		n, err1 := strconv.Atoi(args[0])
		size, err2 := strconv.ParseInt(args[1], 10, 64)
		if err1 != nil || err2 != nil || n <= 0 || size < 0 {
			return fmt.Errorf("bad N SIZE: %q", args)
		}
		if err := echoOpen(sess, n, size); err != nil {
			return err
		}
		fmt.Println("OK")
		return nil
	case "rst":
		return rst(sess)
	case "goaway":
		return goAway(sess)
	case "ping":
		rtt, err := sess.Ping()
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		fmt.Printf("RTT %.3f\n", float64(rtt.Nanoseconds())/1e6) // milliseconds
		// Stay up so the far side can ping us too; it ends the session.
		<-sess.CloseChan()
		return nil
	default:
		return fmt.Errorf("unknown scenario %q", scenario)
	}
}

// connect returns one session over one TCP connection: dialed (client role,
// odd stream IDs) or the first one accepted on 127.0.0.1:0 (server role).
func connect(role, addr string, cfg *yamux.Config) (*yamux.Session, error) {
	switch role {
	case "client":
		if addr == "" {
			return nil, errors.New("-addr is required in client role")
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		return yamux.Client(conn, cfg)
	case "server":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		fmt.Printf("LISTEN %s\n", ln.Addr())
		conn, err := ln.Accept()
		ln.Close()
		if err != nil {
			return nil, err
		}
		return yamux.Server(conn, cfg)
	default:
		return nil, fmt.Errorf("-role must be client or server, got %q", role)
	}
}

// echo copies every accepted stream back to itself, then half-closes once
// the far side's FIN has arrived. Returns when the far side ends the session.
func echo(sess *yamux.Session) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []error
	for {
		s, err := sess.AcceptStream()
		if err != nil {
			break // session over: the far side closed it
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.Copy(s, s); err != nil {
				mu.Lock()
				failures = append(failures, fmt.Errorf("stream %d: %w", s.StreamID(), err))
				mu.Unlock()
				return
			}
			s.Close() // FIN: Close is a half-close in yamux
		}()
	}
	wg.Wait()
	return errors.Join(failures...)
}

// echoOpen opens n streams at once; each writes size pseudo-random bytes,
// half-closes, reads the echo to EOF and compares SHA-256 digests.
func echoOpen(sess *yamux.Session, n int, size int64) error {
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- echoOne(sess, uint64(i), size) }()
	}
	var all []error
	for range n {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

func echoOne(sess *yamux.Session, seed uint64, size int64) error {
	s, err := sess.OpenStream()
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	// Read concurrently: the echo comes back while we write, and flow
	// control would stall both sides if we wrote everything first.
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	got := make(chan result, 1)
	go func() {
		h := sha256.New()
		n, err := io.Copy(h, s)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = n, err
		got <- r
	}()

	h := sha256.New()
	src := io.LimitReader(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}), size)
	if _, err := io.Copy(io.MultiWriter(s, h), src); err != nil {
		return fmt.Errorf("stream %d: write: %w", s.StreamID(), err)
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("stream %d: close: %w", s.StreamID(), err)
	}
	r := <-got
	if r.err != nil {
		return fmt.Errorf("stream %d: read: %w", s.StreamID(), r.err)
	}
	if r.n != size || !bytes.Equal(r.sum[:], h.Sum(nil)) {
		return fmt.Errorf("stream %d: echo mismatch: sent %d bytes, got %d, sha256 %x want %x",
			s.StreamID(), size, r.n, r.sum, h.Sum(nil))
	}
	return nil
}

// rst accepts streams; on each it reads 4 bytes and resets it, printing
// "RST <id>". Returns when the far side ends the session.
func rst(sess *yamux.Session) error {
	for {
		s, err := sess.AcceptStream()
		if err != nil {
			return nil
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(s, buf); err != nil {
			return fmt.Errorf("stream %d: read: %w", s.StreamID(), err)
		}
		s.Close() // FIN, then RST after StreamCloseTimeout (1 ms)
		fmt.Printf("RST %d\n", s.StreamID())
	}
}

// goAway sends GoAway at once, prints "GOAWAY", then keeps accepting until
// the far side ends the session: any stream accepted after GoAway is a
// failure. Prints "OK" when none was.
func goAway(sess *yamux.Session) error {
	if err := sess.GoAway(); err != nil {
		return fmt.Errorf("goaway: %w", err)
	}
	fmt.Println("GOAWAY")
	if s, err := sess.AcceptStream(); err == nil {
		return fmt.Errorf("accepted stream %d after GoAway", s.StreamID())
	}
	fmt.Println("OK")
	return nil
}
