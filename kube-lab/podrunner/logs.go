package main

import (
	"context"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var logsResource = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "logs"}

// publishLogs names each container's log file to kwok (a kwok Logs object of
// the Pod's name, owned by the Pod so that it goes with it), so that
// `kubectl logs` shows what the runner's processes wrote.
func (r *runner) publishLogs(ctx context.Context, pod *corev1.Pod, dir string) error {
	var logs []any
	for _, c := range pod.Spec.Containers {
		logs = append(logs, map[string]any{
			"containers": []any{c.Name},
			"logsFile":   filepath.Join(dir, c.Name+".log"),
			"follow":     true,
		})
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1",
		"kind":       "Logs",
		"metadata": map[string]any{
			"name":      pod.Name,
			"namespace": pod.Namespace,
			"ownerReferences": []any{map[string]any{
				"apiVersion": "v1", "kind": "Pod", "name": pod.Name, "uid": string(pod.UID),
			}},
		},
		"spec": map[string]any{"logs": logs},
	}}
	force := true
	_, err := r.dynamic.Resource(logsResource).Namespace(pod.Namespace).Apply(ctx, pod.Name, obj,
		metav1.ApplyOptions{FieldManager: "lab-podrunner", Force: force})
	return err
}
