// Package objects reads Kubernetes objects the way kubectl prints them: JSON or
// YAML, one document or several (`---`), a single object or a list.
package objects

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Read decodes every object in r. A list (`kind: List`, or any `...List` with
// `items`, as the API returns it) is expanded into its items. Integers become
// int64, as they are in objects read from the apiserver, so that
// unstructured.NestedInt64 (which kstatus uses) works on them.
func Read(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue // an empty YAML document
		}
		var m map[string]any
		if err := utiljson.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("document %d: not an object: %w", doc, err)
		}
		objs, err := expand(m)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		out = append(out, objs...)
	}
}

// ReadOne decodes exactly one object from r.
func ReadOne(r io.Reader) (*unstructured.Unstructured, error) {
	objs, err := Read(r)
	if err != nil {
		return nil, err
	}
	if len(objs) != 1 {
		return nil, fmt.Errorf("expected exactly one object, found %d", len(objs))
	}
	return objs[0], nil
}

func expand(m map[string]any) ([]*unstructured.Unstructured, error) {
	kind, _ := m["kind"].(string)
	items, isList := m["items"].([]any)
	if !isList || !strings.HasSuffix(kind, "List") {
		return []*unstructured.Unstructured{{Object: m}}, nil
	}
	apiVersion, _ := m["apiVersion"].(string)
	out := make([]*unstructured.Unstructured, 0, len(items))
	for i, item := range items {
		obj, ok := item.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: items[%d] is not an object", kind, i)
		}
		// A typed list (QlikAutomationList) may leave out its items' kind.
		if _, ok := obj["kind"]; !ok && kind != "List" {
			obj["kind"] = strings.TrimSuffix(kind, "List")
		}
		if _, ok := obj["apiVersion"]; !ok && kind != "List" && apiVersion != "" {
			obj["apiVersion"] = apiVersion
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
	return out, nil
}

// Key is `<namespace>/<name>` (`/<name>` for a cluster-scoped object).
func Key(u *unstructured.Unstructured) string {
	return u.GetNamespace() + "/" + u.GetName()
}
