// Command podrunner is the lab's container runtime: test tooling, never part
// of the gateway. kwok plays the kubelet of a fake Node and gives its Pods an
// IP; podrunner then runs each such Pod's containers as local processes, each
// Pod in a network namespace of its own holding the Pod's IP (a veth pair to
// the host, as a CNI plugin would make), and reports a container Ready once
// its declared TCP ports accept connections.
//
// Images are not pulled: a small table maps image names to local programs
// (-image NAME=PROGRAM, NAME being the image's last path element without tag
// or digest; PROGRAM "command:DIR" runs the container's own command with its
// first element looked up in DIR by base name). A Pod whose image is not in
// the table stays not ready with reason ImageNotInLab, and says so in the
// log.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/workqueue"
)

type imageFlags map[string]string

func (f imageFlags) String() string { return fmt.Sprint(map[string]string(f)) }
func (f imageFlags) Set(v string) error {
	name, program, ok := strings.Cut(v, "=")
	if !ok || name == "" || program == "" {
		return fmt.Errorf("want NAME=PROGRAM, got %q", v)
	}
	f[name] = program
	return nil
}

func main() {
	images := imageFlags{}
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the lab")
	node := flag.String("node", "kwok-node-0", "the Node whose Pods this runner runs")
	state := flag.String("state", "/tmp/embedded-gateway-lab/pods", "where volumes and logs are kept")
	hostIP := flag.String("host-ip", "10.244.0.1", "the host side of every Pod's veth (each Pod's only route)")
	flag.Var(images, "image", "NAME=PROGRAM (repeatable): the image table")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("podrunner: kubeconfig: %v", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("podrunner: client: %v", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		log.Fatalf("podrunner: client: %v", err)
	}
	if err := os.MkdirAll(*state, 0o755); err != nil {
		log.Fatalf("podrunner: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	r := &runner{
		client:  client,
		dynamic: dyn,
		state:   *state,
		hostIP:  *hostIP,
		images:  images,
		pods:    map[string]*podProcess{},
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", *node).String()
		}))
	informer := factory.Core().V1().Pods().Informer()
	r.lister = factory.Core().V1().Pods().Lister()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			r.queue.Add(key)
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		log.Fatalf("podrunner: %v", err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		log.Fatal("podrunner: the pod cache never synced")
	}
	log.Printf("podrunner: running the Pods of Node %s (images: %v)", *node, images)
	go r.work(ctx)
	<-ctx.Done()
	r.queue.ShutDown()
	r.stopAll()
}

// pod is what a queued key resolves to: nil when the Pod is gone.
func (r *runner) pod(key string) *corev1.Pod {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	p, err := r.lister.Pods(ns).Get(name)
	if err != nil {
		return nil
	}
	return p
}

func (r *runner) work(ctx context.Context) {
	for {
		key, quit := r.queue.Get()
		if quit {
			return
		}
		if err := r.sync(ctx, key, r.pod(key)); err != nil {
			log.Printf("podrunner: %s: %v (retrying)", key, err)
			r.queue.AddRateLimited(key)
		} else {
			r.queue.Forget(key)
		}
		r.queue.Done(key)
	}
}
