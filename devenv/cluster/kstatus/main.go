// kstatus-check: how kstatus (sigs.k8s.io/cli-utils, what Flux and the kstatus tool use)
// reads an object. Reads one object as JSON on stdin; prints {"status": ..., "message": ...}.
// Built by devenv/cluster/build.sh for the tests of our conditions (tests/integration/test_gitops_status.py).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	var obj unstructured.Unstructured
	if err := obj.UnmarshalJSON(raw); err != nil {
		fail(err)
	}
	result, err := status.Compute(&obj)
	if err != nil {
		fail(err)
	}
	out, _ := json.Marshal(map[string]string{"status": result.Status.String(), "message": result.Message})
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
