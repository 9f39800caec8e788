package mqtt

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestUsernamePassword(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		mosquittoBin(t) // skips or fails the same way
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal("mosquitto_passwd not found: install the Debian package mosquitto")
		}
		t.Skip("mosquitto_passwd not found: install the Debian package mosquitto")
	}
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	const user, pass = "greenloop", "plug-Secret-42"
	if out, err := exec.Command(bin, "-b", "-c", pwFile, user, pass).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	b := startBroker(t, "allow_anonymous false", "password_file "+pwFile)
	clk := &clock{t: t0}

	c := newTestCollector(t, Config{Broker: b.url("tcp"), Format: FormatTasmota, Username: user, Password: pass}, clk, nil)
	waitSubscribed(t, c)
	pub := newPublisher(t, b, func(o *paho.ClientOptions) { o.SetUsername(user).SetPassword(pass) })
	pub.publish("tele/p/SENSOR", []byte(`{"ENERGY":{"Power":7}}`))
	waitFor(t, c, "a message with credentials", hasValue(mP, "p", 7))

	logs := &syncBuffer{}
	bad := newTestCollector(t, Config{Broker: b.url("tcp"), Format: FormatTasmota, Username: user, Password: "wrong-Secret-43",
		FirstWait: 500 * time.Millisecond}, clk, logs)
	got := collectOnce(t, bad)
	if !errors.Is(got.err, ErrNotConnected) {
		t.Errorf("wrong password: err %v, want ErrNotConnected", got.err)
	}
	for _, s := range []string{logs.String(), errString(got.err)} {
		if strings.Contains(s, "wrong-Secret-43") {
			t.Errorf("the password shows in %q", s)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// testPKI writes a CA and a server certificate for 127.0.0.1 into dir.
func testPKI(t *testing.T, dir string) (caFile, certFile, keyFile string, caPool *x509.CertPool) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "greenloop test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caPool = x509.NewCertPool()
	caPool.AddCert(caCert)
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER),
		write("server.key", "EC PRIVATE KEY", keyDER), caPool
}

func TestTLS(t *testing.T) {
	mosquittoBin(t)
	caFile, certFile, keyFile, pool := testPKI(t, t.TempDir())
	b := startBroker(t, "allow_anonymous true", "cafile "+caFile, "certfile "+certFile, "keyfile "+keyFile)
	clk := &clock{t: t0}

	c := newTestCollector(t, Config{Broker: b.url("mqtts"), Format: FormatTasmota, CAFile: caFile}, clk, nil)
	waitSubscribed(t, c)
	pub := newPublisher(t, b, func(o *paho.ClientOptions) {
		u, _ := url.Parse(b.url("ssl"))
		o.Servers = []*url.URL{u}
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	})
	pub.publish("tele/p/SENSOR", []byte(`{"ENERGY":{"Power":9}}`))
	waitFor(t, c, "a message over TLS", hasValue(mP, "p", 9))

	// Without the CA the broker's certificate is refused ...
	untrusting := newTestCollector(t, Config{Broker: b.url("ssl"), Format: FormatTasmota, FirstWait: 500 * time.Millisecond}, clk, nil)
	if got := collectOnce(t, untrusting); !errors.Is(got.err, ErrNotConnected) {
		t.Errorf("without the CA: err %v, want ErrNotConnected", got.err)
	}
	// ... unless the operator asked to skip the check.
	insecure := newTestCollector(t, Config{Broker: b.url("ssl"), Format: FormatTasmota, InsecureSkipVerify: true}, clk, nil)
	waitSubscribed(t, insecure)
	pub.publish("tele/p/SENSOR", []byte(`{"ENERGY":{"Power":11}}`))
	waitFor(t, insecure, "a message over unverified TLS", hasValue(mP, "p", 11))
}

func TestWebSocket(t *testing.T) {
	mosquittoBin(t)
	wsPort := freePort(t)
	b := startBroker(t, "allow_anonymous true", "listener "+strconv.Itoa(wsPort)+" 127.0.0.1", "protocol websockets")
	clk := &clock{t: t0}
	c := newTestCollector(t, Config{Broker: "ws://127.0.0.1:" + strconv.Itoa(wsPort) + "/mqtt", Format: FormatShelly}, clk, nil)
	waitSubscribed(t, c)
	pub := newPublisher(t, b, nil)
	pub.publish("plug-ws/status/switch:0", []byte(`{"id":0,"apower":12.5}`))
	waitFor(t, c, "a message over WebSocket", hasValue(mP, "plug-ws/switch:0", 12.5))
}
