package main

// kube-controller-manager and kube-scheduler, as child processes of the same
// binary (`kubesim controller-manager …`, `kubesim scheduler …`).
//
// Why they are here: without the controller manager a namespace has no
// `default` ServiceAccount (pod creation is refused by the ServiceAccount
// admission plugin), `kubectl delete namespace` never finishes (the namespace
// controller removes the `kubernetes` finalizer), nothing garbage-collects
// owned objects, Deployments never get ReplicaSets or Pods, and the
// node-lifecycle controller never removes the not-ready taint that the
// TaintNodesByCondition admission plugin puts on new nodes. Without the
// scheduler, pods that do not name a node stay Pending (kwok only manages
// pods bound to its nodes).
//
// Why child processes: both components install a process-wide signal handler
// that may be set up only once per process, and keep process-global state.
// Pdeathsig ties them to kubesim: if kubesim is killed, they die too.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"

	"k8s.io/component-base/cli"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

// runSubcommand runs `kubesim controller-manager|scheduler ARGS` and reports
// whether args[0] was one of them.
func runSubcommand(args []string) (code int, ok bool) {
	if len(args) == 0 {
		return 0, false
	}
	switch args[0] {
	case "controller-manager":
		cmd := kcm.NewControllerManagerCommand()
		cmd.SetArgs(args[1:])
		return cli.Run(cmd), true
	case "scheduler":
		cmd := scheduler.NewSchedulerCommand()
		cmd.SetArgs(args[1:])
		return cli.Run(cmd), true
	}
	return 0, false
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan error // receives Wait's result once
}

// startControllers starts kube-controller-manager and kube-scheduler against
// the admin kubeconfig. Their logs go to our fd 2 (DIR/kubesim.log unless
// --verbose). --secure-port=0: they serve nothing, so several kubesims never
// collide on 10257/10259.
func startControllers(kubeconfig string, pki pkiFiles) ([]*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	common := []string{"--kubeconfig=" + kubeconfig, "--leader-elect=false", "--secure-port=0",
		"--authentication-kubeconfig=" + kubeconfig, "--authorization-kubeconfig=" + kubeconfig, "--v=0"}
	specs := []struct {
		name string
		args []string
	}{
		{"controller-manager", append(append([]string{}, common...),
			"--root-ca-file="+pki.CACert, // published as the kube-root-ca.crt ConfigMap in every namespace
			"--service-account-private-key-file="+pki.SAKey,
			"--cluster-signing-cert-file="+pki.CACert, "--cluster-signing-key-file="+pki.CAKey,
			"--use-service-account-credentials=false",
			// kwok renews node leases on its own schedule; be lenient before
			// declaring a node NotReady (what kwokctl does too).
			"--node-monitor-grace-period=3m20s",
		)},
		{"scheduler", common},
	}
	var started []*child
	for _, s := range specs {
		cmd := exec.Command(self, append([]string{s.name}, s.args...)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			stopChildren(started, 5*time.Second)
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		c := &child{name: s.name, cmd: cmd, done: make(chan error, 1)}
		go func() { c.done <- cmd.Wait() }()
		started = append(started, c)
	}
	return started, nil
}

// anyExited returns a channel that receives a description of the first child to exit.
func anyExited(children []*child) <-chan error {
	out := make(chan error, len(children))
	for _, c := range children {
		go func() {
			err := <-c.done
			c.done <- err // keep it readable for stopChildren
			out <- fmt.Errorf("%s exited: %v", c.name, err)
		}()
	}
	return out
}

// stopChildren sends SIGTERM and waits up to timeout, then SIGKILLs.
func stopChildren(children []*child, timeout time.Duration) {
	for _, c := range children {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(timeout)
	for _, c := range children {
		select {
		case <-c.done:
		case <-deadline:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
}

// waitDefaultServiceAccount polls until the ServiceAccount controller has
// created default/default — proof that the controller manager is working.
func waitDefaultServiceAccount(ctx context.Context, client *http.Client, server, token string,
	timeout time.Duration, died <-chan error) error {
	return pollUntilOK(ctx, client, server, "/api/v1/namespaces/default/serviceaccounts/default", token,
		timeout, died, "a controller exited before the default ServiceAccount was created")
}
