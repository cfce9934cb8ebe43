// Package gatewayconf prepares the gateway configurations examples/gateway
// ships to run as the tests and the benchmark run them: with only their
// addresses and the gateway's token replaced, and for nginx the process
// settings a run from a private directory needs.
package gatewayconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// What the shipped configurations name.
const (
	Scopegate = "127.0.0.1:8282"
	App       = "127.0.0.1:9000"
	Gateway   = "127.0.0.1:8080"
	Token     = "GATEWAY-TOKEN"
)

// Rewrite is a shipped configuration with its addresses and the gateway's
// token replaced.
func Rewrite(conf, scopegate, app, gateway, token string) string {
	return strings.NewReplacer(Scopegate, scopegate, App, app, Gateway, gateway, Token, token).Replace(conf)
}

// WriteNginx writes site (the shipped server block, rewritten) into dir,
// inside a main configuration that keeps nginx's pid, logs and temp files
// in dir, and returns the main configuration's path: run
// nginx -p dir -c path -e dir/error.log.
func WriteNginx(dir, site string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	sitePath := filepath.Join(dir, "scopegate.conf")
	if err := os.WriteFile(sitePath, []byte(site), 0o644); err != nil {
		return "", err
	}
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, dir, sitePath)
	path := filepath.Join(dir, "nginx.conf")
	return path, os.WriteFile(path, []byte(main), 0o644)
}
