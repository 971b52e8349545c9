package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/util/workqueue"
)

type runner struct {
	client  kubernetes.Interface
	dynamic dynamic.Interface
	lister  listersv1.PodLister
	state   string
	hostIP  string
	images  imageFlags
	queue   workqueue.TypedRateLimitingInterface[string]

	mu    sync.Mutex
	pods  map[string]*podProcess     // by namespace/name
	ready map[string]map[string]bool // by namespace/name, then container
}

// podProcess is one Pod this runner has set up: its namespace, its
// directory, and one supervisor per container.
type podProcess struct {
	uid        string
	netns      string
	dir        string
	ip         string
	containers []*container
	// Mount points that did not exist and were made for this Pod's volumes;
	// removed again when the Pod goes.
	madeDirs []string
}

// sync brings the runner's processes in line with one Pod: started when it
// has an IP and is not being deleted, stopped otherwise.
func (r *runner) sync(ctx context.Context, key string, pod *corev1.Pod) error {
	r.mu.Lock()
	running := r.pods[key]
	r.mu.Unlock()

	want := pod != nil && pod.DeletionTimestamp == nil && pod.Status.PodIP != "" && !pod.Spec.HostNetwork
	if running != nil && (!want || string(pod.UID) != running.uid) {
		r.stop(key, running)
		running = nil
	}
	if running != nil && want {
		if podReady(pod) != running.readyAsReported() {
			log.Printf("podrunner: %s: Ready was changed by someone else; writing it again", key)
			for _, c := range running.containers {
				c.reassert(ctx)
			}
		}
		return nil
	}
	if !want {
		return nil
	}
	p, err := r.start(ctx, pod)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.pods[key] = p
	r.mu.Unlock()
	return nil
}

// names derives the network namespace and host-side veth names from the
// Pod's UID (an interface name holds at most 15 bytes).
func names(uid string) (netns, veth string) {
	sum := sha256.Sum256([]byte(uid))
	h := hex.EncodeToString(sum[:])[:10]
	return "lab-" + h, "vl" + h
}

func (r *runner) start(ctx context.Context, pod *corev1.Pod) (*podProcess, error) {
	key := pod.Namespace + "/" + pod.Name
	netns, veth := names(string(pod.UID))
	p := &podProcess{
		uid:   string(pod.UID),
		netns: netns,
		dir:   filepath.Join(r.state, pod.Namespace+"_"+pod.Name),
		ip:    pod.Status.PodIP,
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	if err := r.network(netns, veth, p.ip); err != nil {
		r.teardownNetwork(netns)
		return nil, fmt.Errorf("network for %s (%s): %w", key, p.ip, err)
	}
	volumes, err := r.writeVolumes(ctx, pod, p.dir)
	if err != nil {
		r.teardownNetwork(netns)
		return nil, err
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		mounts, made, err := mountsOf(c, volumes)
		p.madeDirs = append(p.madeDirs, made...)
		if err != nil {
			r.teardownNetwork(netns)
			return nil, fmt.Errorf("%s container %s: %w", key, c.Name, err)
		}
		ct := &container{
			runner: r,
			pod:    pod.DeepCopy(),
			spec:   c.DeepCopy(),
			netns:  netns,
			ip:     p.ip,
			mounts: mounts,
			log:    filepath.Join(p.dir, c.Name+".log"),
			done:   make(chan struct{}),
		}
		ct.argv, ct.reason = r.program(c)
		p.containers = append(p.containers, ct)
		go ct.supervise(ctx)
	}
	if err := r.publishLogs(ctx, pod, p.dir); err != nil {
		// Not fatal: the Pod runs, only `kubectl logs` cannot show it.
		log.Printf("podrunner: %s: Logs object for kubectl logs: %v", key, err)
	}
	log.Printf("podrunner: %s started in netns %s with IP %s", key, netns, p.ip)
	return p, nil
}

func (r *runner) stop(key string, p *podProcess) {
	var wg sync.WaitGroup
	for _, c := range p.containers {
		wg.Add(1)
		go func() { defer wg.Done(); c.stop() }()
	}
	wg.Wait()
	r.teardownNetwork(p.netns)
	// Deepest first, so a parent is empty when its turn comes.
	for i := len(p.madeDirs) - 1; i >= 0; i-- {
		_ = os.Remove(p.madeDirs[i])
	}
	r.mu.Lock()
	if r.pods[key] == p {
		delete(r.pods, key)
		delete(r.ready, key)
	}
	r.mu.Unlock()
	log.Printf("podrunner: %s stopped", key)
}

func (r *runner) stopAll() {
	r.mu.Lock()
	all := make(map[string]*podProcess, len(r.pods))
	for k, p := range r.pods {
		all[k] = p
	}
	r.mu.Unlock()
	for k, p := range all {
		r.stop(k, p)
	}
}

// network makes the Pod's namespace: lo, and eth0 holding the Pod's IP with
// one route, to the host side of the veth. No default route: a Pod can reach
// the host (and, through it, nothing else), never the outside.
func (r *runner) network(netns, veth, ip string) error {
	steps := [][]string{
		{"netns", "add", netns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", netns, "addr", "add", ip + "/32", "dev", "eth0"},
		{"-n", netns, "link", "set", "eth0", "up"},
		{"-n", netns, "route", "add", r.hostIP + "/32", "dev", "eth0"},
		{"addr", "add", r.hostIP + "/32", "dev", veth},
		{"link", "set", veth, "up"},
		{"route", "replace", ip + "/32", "dev", veth, "src", r.hostIP},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// teardownNetwork deletes the namespace; its eth0 goes with it, and with
// eth0 the host side of the pair and the host's route to the Pod.
func (r *runner) teardownNetwork(netns string) {
	_ = exec.Command("ip", "netns", "del", netns).Run()
}

// program resolves a container's image through the table; an empty argv
// comes with the reason the container cannot run.
func (r *runner) program(c *corev1.Container) (argv []string, reason string) {
	name := imageName(c.Image)
	prog, ok := r.images[name]
	if !ok {
		return nil, fmt.Sprintf("image %q is not in the lab's image table (podrunner -image)", c.Image)
	}
	if dir, ok := strings.CutPrefix(prog, "command:"); ok {
		if len(c.Command) == 0 {
			return nil, fmt.Sprintf("image %q runs the container's command, and the container has none", c.Image)
		}
		path := filepath.Join(dir, filepath.Base(c.Command[0]))
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Sprintf("image %q: %v", c.Image, err)
		}
		return append(append([]string{path}, c.Command[1:]...), c.Args...), ""
	}
	if _, err := os.Stat(prog); err != nil {
		return nil, fmt.Sprintf("image %q: %v", c.Image, err)
	}
	// The image's entrypoint is the program; a container command replaces
	// it only in name (the table decides what runs), its arguments count.
	args := c.Args
	if len(c.Command) > 1 {
		args = append(append([]string{}, c.Command[1:]...), c.Args...)
	}
	return append([]string{prog}, args...), ""
}

// imageName is the last path element of an image reference, without tag or
// digest: "gcr.io/k8s-staging-gateway-api/echo-basic:v1" -> "echo-basic".
func imageName(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndex(image, "/"); i >= 0 {
		image = image[i+1:]
	}
	if i := strings.Index(image, ":"); i >= 0 {
		image = image[:i]
	}
	return image
}
