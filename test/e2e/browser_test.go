package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestFleetPageInBrowser opens the first page of a demo server in a real
// headless Chromium and checks what a person sees: a row per demo site with
// live figures in their units, filled in by the page's own refresh.
func TestFleetPageInBrowser(t *testing.T) {
	chromium := requireTool(t, "chromium", "/usr/bin/chromium", "chromium")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "server.yaml")
	// Three hours of history keep the test quick; the page only needs today's data.
	if err := os.WriteFile(cfg, []byte("demo: {enabled: true, history: 3h}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "greenloop-demo", filepath.Join(dir, "data"), "--config", cfg)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(filepath.Join(dir, "chromium")),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 900))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx); err != nil { // starts the browser; no deadline on this context
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()
	if err := chromedp.Do(tctx, chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.CSS(`body[data-ready="1"]`))); err != nil {
		t.Fatalf("page did not become ready: %v", err)
	}
	rows, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`#sites tbody`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"fra1", "ams1", "par1", "mad1", "waw1", "sto1"} {
		if !strings.Contains(rows, site) {
			t.Errorf("site %s missing from the page:\n%s", site, rows)
		}
	}
	// Figures with units, not placeholders: power in kW/MW, PUE like 1.23, intensity in g/kWh.
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\d+(\.\d+)? (kW|MW)`),
		regexp.MustCompile(`\b1\.\d\d\b`),
		regexp.MustCompile(`\d+ g/kWh`),
		regexp.MustCompile(`\d+(\.\d+)? (kg|t)`),
	} {
		if !want.MatchString(rows) {
			t.Errorf("no %s on the page:\n%s", want, rows)
		}
	}
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "fleet.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if out := os.Getenv("GREENLOOP_SCREENSHOT"); out != "" {
		_ = os.WriteFile(out, png, 0o644)
	}
	if len(png) < 10_000 {
		t.Errorf("screenshot is only %d bytes: an empty page?", len(png))
	}
}
