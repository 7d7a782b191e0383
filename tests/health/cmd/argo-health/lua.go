package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
)

// healthStatus is Argo CD's health.HealthStatus (gitops-engine pkg/health): what
// a health.lua returns, and what health_test.yaml expects.
type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

// The codes Argo CD accepts from a script (isValidHealthStatusCode in
// argo-cd util/lua/lua.go); any other status becomes Unknown.
var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

const invalidHealthStatus = "Lua returned an invalid health status"

// runHealth runs script with the global `obj` set to obj, as Argo CD's
// VM.ExecuteHealthLua does (argo-cd util/lua/lua.go):
//
//   - a new LState with gopher-lua's standard libraries only when openLibs
//     (Argo CD sets it for built-in resource_customizations scripts and in its
//     tests; argocd-cm scripts get it only with
//     `resource.customizations.useOpenLibs.<group_kind>: "true"`), then the
//     package, base and table libraries in every case, plus Argo CD's "safe os"
//     (only time and date, see openSafeOs);
//   - a 1 s context;
//   - obj converted to Lua tables (decodeValue);
//   - the last value the script leaves on the stack read back through JSON
//     (layeh.com/gopher-json, as Argo CD does): a table becomes the status
//     (an empty table gives an empty status), nil an empty status, anything
//     else an error; an unknown status code becomes Unknown.
func runHealth(script string, obj map[string]any, openLibs bool) (healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, fmt.Errorf("opening the %q library: %w", lib.name, err)
		}
	}
	l.PreloadModule(lua.OsLibName, safeOsLoader)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)

	l.SetGlobal("obj", decodeValue(l, obj))
	fn, err := l.LoadString(script)
	if err != nil {
		return healthStatus{}, err
	}
	l.Push(fn)
	if err := l.PCall(0, lua.MultRet, nil); err != nil {
		var apiErr *lua.ApiError
		if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
			apiErr.StackTrace = "" // as Argo CD does: the message reaches users
			return healthStatus{}, apiErr
		}
		return healthStatus{}, err
	}

	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTTable:
		data, err := luajson.Encode(ret)
		if err != nil {
			return healthStatus{}, err
		}
		var hs healthStatus
		if err := json.Unmarshal(data, &hs); err != nil {
			// gopher-json encodes an empty table as `[]`: Argo CD reads that as
			// an empty status.
			var typeErr *json.UnmarshalTypeError
			if errors.As(err, &typeErr) && typeErr.Value == "array" {
				return healthStatus{}, nil
			}
			return healthStatus{}, err
		}
		if !validStatus[hs.Status] {
			return healthStatus{Status: "Unknown", Message: invalidHealthStatus}, nil
		}
		return hs, nil
	case lua.LTNil:
		return healthStatus{}, nil
	default:
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
}

// safeOsFuncs are the os functions Argo CD lets scripts use (util/lua/oslib_safe.go):
// time and date. They are taken from gopher-lua's own os library, which Argo
// CD's copies follow.
var safeOsFuncs = sync.OnceValue(func() map[string]lua.LGFunction {
	full := lua.NewState()
	defer full.Close()
	osLib := full.GetGlobal(lua.OsLibName)
	funcs := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		funcs[name] = full.GetField(osLib, name).(*lua.LFunction).GFunction
	}
	return funcs
})

// openSafeOs mirrors Argo CD's OpenSafeOs, including where it puts the
// functions: it registers them with l.RegisterModule(lua.TabLibName, ...), so
// they land in the `table` library, and `os` itself is a global only when the
// standard libraries are open (then it is gopher-lua's full os library).
// `require("os")` gives the safe subset through safeOsLoader.
func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.TabLibName, safeOsFuncs()))
	return 1
}

func safeOsLoader(l *lua.LState) int {
	l.Push(l.SetFuncs(l.NewTable(), safeOsFuncs()))
	return 1
}

// decodeValue converts a decoded JSON value (as in unstructured.Unstructured)
// to Lua as Argo CD's decodeValue does: objects become tables keyed by
// string, arrays 1-based sequences, numbers (float64 or int) LNumber,
// json.Number a string, null (and anything else) nil.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case json.Number:
		return lua.LString(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(decodeValue(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for k, item := range v {
			t.RawSetH(lua.LString(k), decodeValue(l, item))
		}
		return t
	default:
		return lua.LNil
	}
}
