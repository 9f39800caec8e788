package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Defaults, then the file, then the environment, then flags.
func TestServeConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(file, []byte("listen: 127.0.0.1:1111\ndata_dir: /from/file\nlog: {level: warn}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                 string
		env                  map[string]string
		args                 []string
		listen, dataDir, lvl string
		demo, tempDir        bool
	}{
		{name: "defaults", listen: "127.0.0.1:8080", dataDir: "./data", lvl: "info"},
		{name: "file", args: []string{"--config", file}, listen: "127.0.0.1:1111", dataDir: "/from/file", lvl: "warn"},
		{name: "env over file", args: []string{"--config", file}, env: map[string]string{"GREENLOOP_LISTEN": "127.0.0.1:2222", "GREENLOOP_LOG_LEVEL": "debug"},
			listen: "127.0.0.1:2222", dataDir: "/from/file", lvl: "debug"},
		{name: "flag over env", args: []string{"--config", file, "--listen", "127.0.0.1:3333"}, env: map[string]string{"GREENLOOP_LISTEN": "127.0.0.1:2222"},
			listen: "127.0.0.1:3333", dataDir: "/from/file", lvl: "warn"},
		{name: "config from env", env: map[string]string{"GREENLOOP_CONFIG": file}, listen: "127.0.0.1:1111", dataDir: "/from/file", lvl: "warn"},
		{name: "demo without a data dir is temporary", args: []string{"--demo"}, listen: "127.0.0.1:8080", dataDir: "./data", lvl: "info", demo: true, tempDir: true},
		{name: "demo with a data dir keeps it", args: []string{"--demo", "--data-dir", "/tmp/gl"}, listen: "127.0.0.1:8080", dataDir: "/tmp/gl", lvl: "info", demo: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range envVars {
				t.Setenv(v, "")
				os.Unsetenv(v)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, f, err := loadServeConfig(tc.args, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Listen != tc.listen || cfg.DataDir != tc.dataDir || cfg.Log.Level != tc.lvl || cfg.Demo.Enabled != tc.demo || f.tempDataDir != tc.tempDir {
				t.Fatalf("listen %s data_dir %s level %s demo %v temp %v", cfg.Listen, cfg.DataDir, cfg.Log.Level, cfg.Demo.Enabled, f.tempDataDir)
			}
		})
	}
}

func TestServeConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--listen", "nonsense"}, want: `listen: want host:port, got "nonsense"`},
		{args: []string{"--config", "does-not-exist.yaml"}, want: "open config"},
		{args: []string{"extra"}, want: `unexpected argument "extra"`},
		{env: map[string]string{"GREENLOOP_DEMO": "maybe"}, want: "GREENLOOP_DEMO"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		_, _, err := loadServeConfig(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: err %v, want %q", tc.args, tc.env, err, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}
