// Command kubesim runs a real kube-apiserver (k8s.io/kubernetes, in-process)
// on top of an embedded etcd, both on 127.0.0.1, for the e2e matrix.
//
//	kubesim --dir DIR [--port 0] [--verbose] [--controllers=true] [-- extra kube-apiserver flags]
//	kubesim controller-manager|scheduler FLAGS   (the children it starts itself)
//
// It generates DIR/pki (CA, serving cert, admin client cert, service-account
// key, static admin token), keeps etcd data in DIR/etcd, writes
// DIR/admin.kubeconfig, and prints exactly one line on stdout,
//
//	KUBESIM READY https://127.0.0.1:<port>
//
// once /readyz answers 200 to the admin credential and (with --controllers,
// the default) kube-controller-manager and kube-scheduler run as child
// processes and the default ServiceAccount exists. SIGTERM or SIGINT stops
// the children, the apiserver, then etcd, and exits 0. Logs of both go to DIR/kubesim.log,
// or to stderr with --verbose.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"

	_ "k8s.io/component-base/logs/json/register"          // as upstream cmd/kube-apiserver
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // as upstream cmd/kube-apiserver
	_ "k8s.io/component-base/metrics/prometheus/version"  // as upstream cmd/kube-apiserver
	_ "time/tzdata"                                       // CronJob time zones, as upstream
)

const readyPrefix = "KUBESIM READY "

func main() {
	if code, ok := runSubcommand(os.Args[1:]); ok {
		os.Exit(code)
	}
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("kubesim", flag.ContinueOnError)
	dir := fs.String("dir", "", "state directory: pki/, etcd/, admin.kubeconfig, kubesim.log (created; reused on restart)")
	port := fs.Int("port", 0, "kube-apiserver port on 127.0.0.1; 0 = a free port chosen by binding")
	verbose := fs.Bool("verbose", false, "apiserver and etcd logs to stderr instead of DIR/kubesim.log")
	readyTimeout := fs.Duration("ready-timeout", 3*time.Minute, "give up if /readyz is not 200 within this time")
	controllers := fs.Bool("controllers", true, "also run kube-controller-manager and kube-scheduler (child processes)")
	stopTimeout := fs.Duration("stop-timeout", 60*time.Second, "exit 1 if shutdown after a signal takes longer than this")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kubesim --dir DIR [--port 0] [--verbose] [--controllers=true] [-- kube-apiserver flags...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *dir == "" {
		fs.Usage()
		return 2
	}
	state, err := filepath.Abs(*dir)
	if err != nil {
		return fail(os.Stderr, err)
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return fail(os.Stderr, err)
	}

	// Quiet by default: every log line of the libraries (klog, etcd's zap,
	// grpc) goes to fd 2, so fd 2 itself is pointed at the log file; our own
	// few messages go to the original stderr.
	console := os.Stderr
	logPath := filepath.Join(state, "kubesim.log")
	if !*verbose {
		c, err := redirectStderr(logPath)
		if err != nil {
			return fail(os.Stderr, err)
		}
		console = c
	}
	failWithLog := func(err error) int {
		if !*verbose {
			fmt.Fprintf(console, "kubesim: last lines of %s:\n%s", logPath, tail(logPath, 40))
		}
		return fail(console, err)
	}

	pki := newPKIFiles(state)
	token, err := ensurePKI(pki)
	if err != nil {
		return fail(console, fmt.Errorf("pki: %w", err))
	}

	// Bind first, so the port is ours (no probe-then-bind race); the
	// apiserver serves on this very listener.
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fail(console, err)
	}
	apiPort := ln.Addr().(*net.TCPAddr).Port
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	etcd, etcdURL, err := startEtcd(filepath.Join(state, "etcd"), *readyTimeout)
	if err != nil {
		return failWithLog(fmt.Errorf("etcd: %w", err))
	}
	defer etcd.Close() // exactly once: Close panics on a second call

	kubeconfig := filepath.Join(state, "admin.kubeconfig")
	if err := writeKubeconfig(kubeconfig, server, pki.CACert, token); err != nil {
		return fail(console, err)
	}

	args := []string{
		"--advertise-address=127.0.0.1", // no host-interface lookup (fails without a default route)
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort), // validated; the listener above is what serves
		"--cert-dir=" + pki.Dir,
		"--tls-cert-file=" + pki.ServingCert,
		"--tls-private-key-file=" + pki.ServingKey,
		"--client-ca-file=" + pki.CACert,
		"--token-auth-file=" + pki.TokenFile,
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + pki.SAKey,
		"--service-account-signing-key-file=" + pki.SAKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--etcd-servers=" + etcdURL,
		"--endpoint-reconciler-type=none", // do not publish 127.0.0.1 as the kubernetes Service endpoint
		"--allow-privileged=true",
		// kwok's fake kubelet: the apiserver dials the node's InternalIP and
		// daemonEndpoints.kubeletEndpoint.Port. No --kubelet-certificate-authority,
		// so kwok's self-signed serving cert is accepted (kubelet_client.go:
		// no CA => TLS.Insecure).
		"--kubelet-preferred-address-types=InternalIP,Hostname,ExternalIP",
		"--kubelet-client-certificate=" + pki.AdminCert,
		"--kubelet-client-key=" + pki.AdminKey,
		"--enable-priority-and-fairness=false", // less CPU on small machines
		"--profiling=false",
		"--v=0",
	}
	args = append(args, fs.Args()...) // later flags win

	errc := make(chan error, 1)
	if err := startAPIServer(ctx, ln, args, errc); err != nil {
		return failWithLog(fmt.Errorf("kube-apiserver: %w", err))
	}

	client, err := adminHTTPClient(pki.CACert)
	if err != nil {
		return fail(console, err)
	}
	defer client.CloseIdleConnections()
	// stopAPIServer cancels the apiserver's context and waits for it to return.
	stopAPIServer := func() {
		stop()
		select {
		case <-errc:
		case <-time.After(*stopTimeout):
		}
	}
	if err := waitReady(ctx, client, server, token, *readyTimeout, errc); err != nil {
		if ctx.Err() != nil {
			stopAPIServer()
			return 0 // signalled during startup
		}
		return failWithLog(err)
	}

	var children []*child
	died := make(<-chan error)
	if *controllers {
		if children, err = startControllers(kubeconfig, pki); err != nil {
			stopAPIServer()
			return failWithLog(err)
		}
		died = anyExited(children)
		if err := waitDefaultServiceAccount(ctx, client, server, token, *readyTimeout, died); err != nil {
			stopChildren(children, 10*time.Second)
			stopAPIServer()
			if ctx.Err() != nil {
				return 0
			}
			return failWithLog(err)
		}
	}
	fmt.Fprintln(os.Stdout, readyPrefix+server)

	select {
	case err := <-died:
		stopChildren(children, 10*time.Second)
		stopAPIServer()
		return failWithLog(err)
	case err := <-errc:
		stopChildren(children, 10*time.Second)
		if ctx.Err() == nil {
			return failWithLog(fmt.Errorf("kube-apiserver stopped: %v", err))
		}
	case <-ctx.Done():
		stopChildren(children, 10*time.Second)
		select {
		case err := <-errc:
			if err != nil {
				fmt.Fprintf(console, "kubesim: kube-apiserver shutdown: %v\n", err)
			}
		case <-time.After(*stopTimeout):
			return fail(console, fmt.Errorf("kube-apiserver did not stop within %s", *stopTimeout))
		}
	}
	return 0 // the deferred etcd.Close runs now, after the apiserver has stopped
}

func startEtcd(dataDir string, timeout time.Duration) (*embed.Etcd, string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil { // etcd insists on 0700
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "kubesim"
	cfg.Dir = dataDir
	// Port 0: etcd binds itself and we read the port back from its listener.
	// The peer listener is never dialled (single member) but etcd requires one.
	any0 := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{any0}, []url.URL{any0}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{any0}, []url.URL{any0}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.UnsafeNoFsync = true // test fixture: durability across power loss is not a goal
	cfg.LogLevel = "error"
	// The JSON gateway would dial the configured address (port 0), not the
	// bound one; nothing here uses it (the apiserver speaks gRPC).
	cfg.EnableGRPCGateway = false
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", err
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", err
	case <-time.After(timeout):
		e.Close()
		return nil, "", fmt.Errorf("not ready within %s", timeout)
	}
	return e, "http://" + e.Clients[0].Addr().String(), nil
}

// startAPIServer does what app.NewAPIServerCommand's RunE does, minus its
// process-wide signal handler (we own signals, so etcd stops after the
// apiserver) and with our pre-bound listener.
func startAPIServer(ctx context.Context, ln net.Listener, args []string, errc chan<- error) error {
	s := options.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	rest.SetDefaultWarningHandler(rest.NoWarnings{}) // as upstream: loopback clients stay quiet
	featureGate := s.GenericServerRunOptions.ComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	if err := logsapi.ValidateAndApply(s.Logs, featureGate); err != nil {
		return err
	}
	s.SecureServing.Listener = ln
	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return errors.Join(errs...)
	}
	featureGate.(featuregate.MutableFeatureGate).AddMetrics()
	go func() { errc <- app.Run(ctx, completed) }()
	return nil
}

// adminHTTPClient trusts only the kubesim CA.
func adminHTTPClient(caFile string) (*http.Client, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no certificate in " + caFile)
	}
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

// pollUntilOK GETs server+path with the admin token every 200 ms until it
// answers 200. It fails when ctx ends, when `died` delivers (the process it
// waits on exited; the error is wrapped with exitedMsg), or after timeout.
func pollUntilOK(ctx context.Context, client *http.Client, server, path, token string,
	timeout time.Duration, died <-chan error, exitedMsg string) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := client.Do(req); err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-died:
			return fmt.Errorf("%s: %w", exitedMsg, err)
		case <-deadline.C:
			return fmt.Errorf("%s not 200 within %s; last: %s", path, timeout, last)
		case <-tick.C:
		}
	}
}

// waitReady polls /readyz with the admin token until it answers 200.
func waitReady(ctx context.Context, client *http.Client, server, token string, timeout time.Duration, errc <-chan error) error {
	return pollUntilOK(ctx, client, server, "/readyz", token, timeout, errc, "kube-apiserver exited before ready")
}

func writeKubeconfig(path, server, caFile, token string) error {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubesim"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	kc.AuthInfos["kubesim-admin"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["kubesim"] = &clientcmdapi.Context{Cluster: "kubesim", AuthInfo: "kubesim-admin", Namespace: "default"}
	kc.CurrentContext = "kubesim"
	tmp := path + ".tmp"
	if err := clientcmd.WriteToFile(*kc, tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path) // readers never see a half-written file
}

// redirectStderr points fd 2 at logPath (append) and returns a handle on the
// original stderr.
func redirectStderr(logPath string) (*os.File, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	orig, err := syscall.Dup(2)
	if err != nil {
		return nil, err
	}
	if err := syscall.Dup3(int(logf.Fd()), 2, 0); err != nil {
		return nil, err
	}
	syscall.CloseOnExec(orig)
	return os.NewFile(uintptr(orig), "/dev/stderr"), nil
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error() + "\n"
	}
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n++
			if n > lines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

func fail(w io.Writer, err error) int {
	fmt.Fprintf(w, "kubesim: %v\n", err)
	return 1
}
