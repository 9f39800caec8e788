package mqtt

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// broker is a mosquitto the test started on 127.0.0.1, on a free port.
type broker struct {
	t    *testing.T
	bin  string
	dir  string
	port int
	conf string // extra configuration lines of the listener

	mu  sync.Mutex
	cmd *exec.Cmd
}

// mosquittoBin finds mosquitto (Debian installs it in /usr/sbin), failing
// under CI=true and skipping otherwise when it is missing.
func mosquittoBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("mosquitto not found: install the Debian package mosquitto")
	}
	t.Skip("mosquitto not found: install the Debian package mosquitto")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBroker starts mosquitto with anonymous access (or with the extra
// configuration lines given) and stops it when the test ends.
func startBroker(t *testing.T, extra ...string) *broker {
	t.Helper()
	b := &broker{t: t, bin: mosquittoBin(t), dir: t.TempDir(), port: freePort(t), conf: strings.Join(extra, "\n")}
	t.Cleanup(b.stop)
	b.start()
	return b
}

func (b *broker) url(scheme string) string {
	return scheme + "://127.0.0.1:" + strconv.Itoa(b.port)
}

func (b *broker) start() {
	b.t.Helper()
	conf := fmt.Sprintf("listener %d 127.0.0.1\npersistence false\nlog_dest stdout\n", b.port)
	if os.Geteuid() == 0 {
		// Started as root, mosquitto would switch to the user mosquitto,
		// which cannot read the test's private temporary directory.
		conf += "user root\n"
	}
	if b.conf == "" {
		conf += "allow_anonymous true\n"
	} else {
		conf += b.conf + "\n"
	}
	cf := filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		b.t.Fatal(err)
	}
	logf, err := os.OpenFile(filepath.Join(b.dir, "mosquitto.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(b.bin, "-c", cf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	b.mu.Lock()
	b.cmd = cmd
	b.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(b.dir, "mosquitto.log"))
			b.t.Fatalf("mosquitto did not listen on %d: %v\n%s", b.port, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *broker) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Kill()
	_ = b.cmd.Wait()
	b.cmd = nil
}

// publisher is a plain paho client that publishes test payloads.
type publisher struct {
	t *testing.T
	c paho.Client
}

func newPublisher(t *testing.T, b *broker, configure func(*paho.ClientOptions)) *publisher {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(b.url("tcp")).SetClientID("test-pub-" + strconv.Itoa(b.port)).
		SetConnectTimeout(3 * time.Second).SetAutoReconnect(true).SetMaxReconnectInterval(time.Second)
	if configure != nil {
		configure(opts)
	}
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &publisher{t: t, c: c}
}

func (p *publisher) publish(topic string, payload []byte) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok := p.c.Publish(topic, 1, false, payload)
		if tok.WaitTimeout(3*time.Second) && tok.Error() == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("publish %s: %v", topic, tok.Error())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
