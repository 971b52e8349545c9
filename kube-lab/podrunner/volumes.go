package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type mount struct {
	src, dst string
	readOnly bool
}

// writeVolumes writes each Secret, ConfigMap and emptyDir volume of the Pod
// under dir/volumes/<name>, the way the kubelet projects them: one file per
// key (or per listed item, at its path). Other volume kinds are left out and
// named in the log; a container mounting one fails to start.
func (r *runner) writeVolumes(ctx context.Context, pod *corev1.Pod, dir string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		vdir := filepath.Join(dir, "volumes", v.Name)
		var data map[string][]byte
		var items []corev1.KeyToPath
		switch {
		case v.Secret != nil:
			s, err := r.client.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				if v.Secret.Optional != nil && *v.Secret.Optional {
					data = nil
					break
				}
				return nil, fmt.Errorf("volume %s: Secret %s/%s: %w", v.Name, pod.Namespace, v.Secret.SecretName, err)
			}
			data, items = s.Data, v.Secret.Items
		case v.ConfigMap != nil:
			cm, err := r.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				if v.ConfigMap.Optional != nil && *v.ConfigMap.Optional {
					break
				}
				return nil, fmt.Errorf("volume %s: ConfigMap %s/%s: %w", v.Name, pod.Namespace, v.ConfigMap.Name, err)
			}
			data = map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			for k, b := range cm.BinaryData {
				data[k] = b
			}
			items = v.ConfigMap.Items
		case v.EmptyDir != nil:
		default:
			continue
		}
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return nil, err
		}
		files := map[string][]byte{}
		if len(items) > 0 {
			for _, it := range items {
				if b, ok := data[it.Key]; ok {
					files[it.Path] = b
				}
			}
		} else {
			for k, b := range data {
				files[k] = b
			}
		}
		for name, b := range files {
			if strings.Contains(name, "..") {
				return nil, fmt.Errorf("volume %s: key path %q leaves the volume", v.Name, name)
			}
			p := filepath.Join(vdir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return nil, err
			}
			// World-readable: the container may run as another user
			// (securityContext.runAsUser) and the lab holds only test keys.
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return nil, err
			}
		}
		out[v.Name] = vdir
	}
	return out, nil
}

// mountsOf lists a container's volume mounts as bind mounts, creating each
// missing mount point (returned, outermost first, for removal later).
func mountsOf(c *corev1.Container, volumes map[string]string) ([]mount, []string, error) {
	var mounts []mount
	var made []string
	for _, m := range c.VolumeMounts {
		src, ok := volumes[m.Name]
		if !ok {
			// The ServiceAccount token the API server projects into every
			// Pod: nothing the lab runs reads it.
			if strings.HasPrefix(m.Name, "kube-api-access-") {
				continue
			}
			return nil, made, fmt.Errorf("volume %s (mounted at %s) is of a kind the lab does not run", m.Name, m.MountPath)
		}
		if m.SubPath != "" {
			src = filepath.Join(src, m.SubPath)
		}
		info, err := os.Stat(src)
		if err != nil {
			return nil, made, err
		}
		dirs, err := makeMissing(m.MountPath, info.IsDir())
		made = append(made, dirs...)
		if err != nil {
			return nil, made, err
		}
		mounts = append(mounts, mount{src: src, dst: m.MountPath, readOnly: m.ReadOnly})
	}
	return mounts, made, nil
}

// makeMissing creates path (a directory, or an empty file for a file bind
// mount) and any missing parent, returning what it created.
func makeMissing(path string, dir bool) ([]string, error) {
	path = filepath.Clean(path)
	if _, err := os.Stat(path); err == nil {
		return nil, nil
	}
	var missing []string
	for p := path; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil || p == "/" {
			break
		}
		missing = append([]string{p}, missing...)
	}
	var made []string
	for i, p := range missing {
		var err error
		if i == len(missing)-1 && !dir {
			err = os.WriteFile(p, nil, 0o644)
		} else {
			err = os.Mkdir(p, 0o755)
		}
		if err != nil {
			return made, err
		}
		made = append(made, p)
	}
	return made, nil
}

// env is the container's environment as the kubelet would give it: literal
// values, the downward API fields the lab knows, and keys of Secrets and
// ConfigMaps.
func (r *runner) env(ctx context.Context, pod *corev1.Pod, c *corev1.Container, ip string) ([]string, error) {
	out := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + pod.Name}
	for _, e := range c.Env {
		value := e.Value
		if f := e.ValueFrom; f != nil {
			switch {
			case f.FieldRef != nil:
				switch f.FieldRef.FieldPath {
				case "metadata.name":
					value = pod.Name
				case "metadata.namespace":
					value = pod.Namespace
				case "metadata.uid":
					value = string(pod.UID)
				case "spec.nodeName":
					value = pod.Spec.NodeName
				case "spec.serviceAccountName":
					value = pod.Spec.ServiceAccountName
				case "status.podIP":
					value = ip
				case "status.hostIP":
					value = r.hostIP
				default:
					return nil, fmt.Errorf("env %s: fieldRef %s is not known to the lab", e.Name, f.FieldRef.FieldPath)
				}
			case f.SecretKeyRef != nil:
				s, err := r.client.CoreV1().Secrets(pod.Namespace).Get(ctx, f.SecretKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					return nil, fmt.Errorf("env %s: %w", e.Name, err)
				}
				value = string(s.Data[f.SecretKeyRef.Key])
			case f.ConfigMapKeyRef != nil:
				cm, err := r.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, f.ConfigMapKeyRef.Name, metav1.GetOptions{})
				if err != nil {
					return nil, fmt.Errorf("env %s: %w", e.Name, err)
				}
				value = cm.Data[f.ConfigMapKeyRef.Key]
			default:
				return nil, fmt.Errorf("env %s: a valueFrom the lab does not know", e.Name)
			}
		}
		out = append(out, e.Name+"="+value)
	}
	return out, nil
}
