package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// container supervises one container's process: start, readiness, restart
// with backoff (restartPolicy Always, the only policy the lab's workloads
// use), stop.
type container struct {
	runner *runner
	pod    *corev1.Pod
	spec   *corev1.Container
	netns  string
	ip     string
	mounts []mount
	log    string
	argv   []string
	reason string // why argv is empty

	mu       sync.Mutex
	proc     *os.Process
	stopping bool
	stopCh   chan struct{}
	once     sync.Once
	done     chan struct{}
	restarts int32
	// What report last wrote, so that a Ready condition someone else
	// changed (the node lifecycle controller marks Pods of a NotReady Node
	// not ready) can be written again, as a kubelet's status sync does.
	lastState map[string]any
	lastReady bool
}

func (c *container) key() string {
	return c.pod.Namespace + "/" + c.pod.Name + " container " + c.spec.Name
}

func (c *container) stopChan() chan struct{} {
	c.once.Do(func() { c.stopCh = make(chan struct{}) })
	return c.stopCh
}

func (c *container) supervise(ctx context.Context) {
	defer close(c.done)
	stop := c.stopChan()
	if c.argv == nil {
		log.Printf("podrunner: NOT RUNNING %s: %s", c.key(), c.reason)
		c.report(ctx, waiting("ImageNotInLab", c.reason), false)
		<-stop
		return
	}
	backoff := time.Second
	for {
		started := time.Now()
		exit, err := c.runOnce(ctx)
		select {
		case <-stop: // the Pod is going: nothing left to report
			return
		default:
		}
		if err != nil {
			log.Printf("podrunner: %s: %v", c.key(), err)
			c.report(ctx, waiting("RunContainerError", err.Error()), false)
		} else {
			c.report(ctx, terminated(exit, started), false)
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		log.Printf("podrunner: %s exited (%s), restarting in %s", c.key(), exitText(exit, err), backoff)
		select {
		case <-stop:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
		c.restarts++
	}
}

// runOnce runs the process until it exits, reporting it Ready once its ports
// answer.
func (c *container) runOnce(ctx context.Context) (*os.ProcessState, error) {
	env, err := c.runner.env(ctx, c.pod, c.spec, c.ip)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// The program is handed over open, as fd 3, and run as /proc/self/fd/3:
	// a volume mounted over its directory (coredns' ConfigMap goes on /root,
	// where the lab's cache may live) must not hide it.
	prog, err := os.Open(c.argv[0])
	if err != nil {
		return nil, err
	}
	defer prog.Close()
	args := append([]string{"netns", "exec", c.netns, "sh", "-c", c.script(), "podrunner"}, c.argv[1:]...)
	cmd := exec.Command("ip", args...)
	cmd.ExtraFiles = []*os.File{prog}
	cmd.Env = env
	cmd.Dir = "/"
	if c.spec.WorkingDir != "" {
		cmd.Dir = c.spec.WorkingDir
	}
	// The CRI log format (`<RFC 3339 time> <stream> F <line>`), which kwok
	// parses for `kubectl logs`.
	var logMu sync.Mutex
	stdout := &criWriter{file: logf, stream: "stdout", mu: &logMu}
	stderr := &criWriter{file: logf, stream: "stderr", mu: &logMu}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, so stop() reaches the program behind ip and sh.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}

	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		return nil, fmt.Errorf("stopped before start")
	}
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	c.proc = cmd.Process
	c.mu.Unlock()
	_ = os.WriteFile(c.log+".pgid", []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	started := time.Now()
	c.report(ctx, running(started), false)

	exited := make(chan struct{})
	go c.probe(ctx, started, exited)
	err = cmd.Wait()
	stdout.flush()
	stderr.flush()
	_ = os.Remove(c.log + ".pgid")
	close(exited)
	c.mu.Lock()
	c.proc = nil
	c.mu.Unlock()
	if _, ok := err.(*exec.ExitError); ok {
		err = nil
	}
	return cmd.ProcessState, err
}

// script sets up the container's mounts inside the private mount namespace
// `ip netns exec` gives it, drops to the Pod's user when it names one, and
// runs the program.
func (c *container) script() string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, m := range c.mounts {
		fmt.Fprintf(&b, "mount --bind %s %s\n", quote(m.src), quote(m.dst))
		if m.readOnly {
			fmt.Fprintf(&b, "mount -o remount,bind,ro %s\n", quote(m.dst))
		}
	}
	if uid, gid, ok := c.user(); ok {
		fmt.Fprintf(&b, "exec setpriv --reuid %d --regid %d --clear-groups -- /proc/self/fd/3 \"$@\"\n", uid, gid)
	} else {
		b.WriteString("exec /proc/self/fd/3 \"$@\"\n")
	}
	return b.String()
}

func (c *container) user() (uid, gid int64, ok bool) {
	var u, g *int64
	if sc := c.pod.Spec.SecurityContext; sc != nil {
		u, g = sc.RunAsUser, sc.RunAsGroup
	}
	if sc := c.spec.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			u = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			g = sc.RunAsGroup
		}
	}
	if u == nil {
		return 0, 0, false
	}
	if g == nil {
		g = new(int64)
	}
	return *u, *g, true
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// probe reports the container Ready once every TCP port it declares accepts
// a connection on the Pod's IP (a container declaring none is ready when it
// starts), as a kubelet's TCP readiness check would.
func (c *container) probe(ctx context.Context, started time.Time, exited <-chan struct{}) {
	var ports []string
	for _, p := range c.spec.Ports {
		if p.Protocol == "" || p.Protocol == corev1.ProtocolTCP {
			ports = append(ports, net.JoinHostPort(c.ip, strconv.Itoa(int(p.ContainerPort))))
		}
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		ready := true
		for _, addr := range ports {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				ready = false
				break
			}
			conn.Close()
		}
		if ready {
			c.report(ctx, running(started), true)
			log.Printf("podrunner: %s ready on %s %v", c.key(), c.ip, ports)
			return
		}
		select {
		case <-exited:
			return
		case <-tick.C:
		}
	}
}

// stop ends the process: SIGTERM to its group, SIGKILL after the Pod's grace
// period (at most 10 s in the lab).
func (c *container) stop() {
	c.mu.Lock()
	c.stopping = true
	proc := c.proc
	c.mu.Unlock()
	close(c.stopChan())
	if proc != nil {
		_ = syscall.Kill(-proc.Pid, syscall.SIGTERM)
		grace := 10 * time.Second
		if s := c.pod.Spec.TerminationGracePeriodSeconds; s != nil && time.Duration(*s)*time.Second < grace {
			grace = time.Duration(*s) * time.Second
		}
		select {
		case <-c.done:
		case <-time.After(grace):
			_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
			<-c.done
		}
	} else {
		<-c.done
	}
}

func waiting(reason, message string) map[string]any {
	return map[string]any{"waiting": map[string]any{"reason": reason, "message": message}, "running": nil, "terminated": nil}
}

func running(since time.Time) map[string]any {
	return map[string]any{"running": map[string]any{"startedAt": since.UTC().Format(time.RFC3339)}, "waiting": nil, "terminated": nil}
}

func terminated(s *os.ProcessState, started time.Time) map[string]any {
	code := -1
	if s != nil {
		code = s.ExitCode()
	}
	reason := "Error"
	if code == 0 {
		reason = "Completed"
	}
	return map[string]any{"terminated": map[string]any{
		"exitCode": code, "reason": reason,
		"startedAt": started.UTC().Format(time.RFC3339), "finishedAt": time.Now().UTC().Format(time.RFC3339),
	}, "waiting": nil, "running": nil}
}

func exitText(s *os.ProcessState, err error) string {
	if err != nil {
		return err.Error()
	}
	if s == nil {
		return "unknown"
	}
	return s.String()
}

// report writes this container's status, and the Pod's Ready and
// ContainersReady conditions (true when every container of the Pod is
// ready), with a strategic merge patch of the status subresource.
func (c *container) report(ctx context.Context, state map[string]any, ready bool) {
	c.mu.Lock()
	c.lastState, c.lastReady = state, ready
	c.mu.Unlock()
	readyAll := c.runner.setReady(c.pod.Namespace+"/"+c.pod.Name, c.spec.Name, ready, len(c.pod.Spec.Containers))
	now := metav1.Now().UTC().Format(time.RFC3339)
	cond := func(t string) map[string]any {
		m := map[string]any{"type": t, "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now}
		if readyAll {
			m["status"], m["reason"] = "True", nil
		}
		return m
	}
	patch := map[string]any{"status": map[string]any{
		"conditions": []any{cond("Ready"), cond("ContainersReady")},
		"containerStatuses": []any{map[string]any{
			"name": c.spec.Name, "image": c.spec.Image, "imageID": "", "ready": ready,
			"started": state["running"] != nil, "restartCount": c.restarts, "state": state,
		}},
	}}
	body, err := json.Marshal(patch)
	if err != nil {
		return
	}
	_, err = c.runner.client.CoreV1().Pods(c.pod.Namespace).Patch(ctx, c.pod.Name,
		types.StrategicMergePatchType, body, metav1.PatchOptions{FieldManager: "lab-podrunner"}, "status")
	if err != nil && !apierrors.IsNotFound(err) {
		log.Printf("podrunner: %s: status patch: %v", c.key(), err)
	}
}

// setReady records one container's readiness and answers whether all of the
// Pod's containers are ready.
func (r *runner) setReady(pod, container string, ready bool, total int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ready == nil {
		r.ready = map[string]map[string]bool{}
	}
	m := r.ready[pod]
	if m == nil {
		m = map[string]bool{}
		r.ready[pod] = m
	}
	m[container] = ready
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n == total
}

// reassert writes the last reported status again.
func (c *container) reassert(ctx context.Context) {
	c.mu.Lock()
	state, ready := c.lastState, c.lastReady
	c.mu.Unlock()
	if state != nil {
		c.report(ctx, state, ready)
	}
}

// readyAsReported answers whether the runner reported every container ready.
func (p *podProcess) readyAsReported() bool {
	for _, c := range p.containers {
		c.mu.Lock()
		ready := c.lastReady
		c.mu.Unlock()
		if !ready {
			return false
		}
	}
	return true
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// criWriter writes what a process prints as CRI log lines, one per line it
// prints; flush writes a last line the process left unterminated.
type criWriter struct {
	file    *os.File
	stream  string
	mu      *sync.Mutex
	pending []byte
}

func (w *criWriter) Write(b []byte) (int, error) {
	w.pending = append(w.pending, b...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := w.pending[:i]
		w.mu.Lock()
		_, err := fmt.Fprintf(w.file, "%s %s F %s\n", time.Now().UTC().Format(time.RFC3339Nano), w.stream, line)
		w.mu.Unlock()
		w.pending = w.pending[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}

func (w *criWriter) flush() {
	if len(w.pending) > 0 {
		_, _ = w.Write([]byte{'\n'})
	}
}
