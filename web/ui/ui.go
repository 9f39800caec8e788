// Package ui serves greenloop's first page: the fleet "now" view, one row per
// site with its power, PUE, inlet temperature, grid carbon intensity and
// today's energy and CO2e, rendered on the server and refreshed by a small
// script from /api/v1/fleet. Templates and assets are embedded; nothing is
// loaded from elsewhere.
package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/summary"
)

// Routes this package registers.
const (
	PathPage   = "/"
	PathFleet  = "/api/v1/fleet"
	PathStatic = "/static/*"
)

// PublicPaths are the routes that need no token: the embedded assets.
var PublicPaths = []string{PathStatic}

// ContextKeyTenant is the echo context key holding the caller's tenant (a
// string, empty or absent when auth is off); the web server sets it.
const ContextKeyTenant = "tenant"

// RefreshInterval is how often the page refreshes itself.
const RefreshInterval = 10 * time.Second

// Deps is what the page needs from the rest of the server.
type Deps struct {
	// Summaries returns the summaries of the sites the tenant may see (tenant
	// is "" when auth is off), e.g. summary.Compute over the tenant's view of the store.
	Summaries func(ctx context.Context, tenant string) ([]summary.SiteSummary, error)
	// Logger receives failures to compute the summaries; nil discards them.
	Logger *slog.Logger
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Fleet is the body of GET /api/v1/fleet.
type Fleet struct {
	// At is the instant of the figures, Since the start of "today" (midnight UTC).
	At    time.Time             `json:"at"`
	Since time.Time             `json:"since"`
	Sites []summary.SiteSummary `json:"sites"`
	// Totals add up the sites.
	Totals summary.Totals `json:"totals"`
	// Attribution is the credit due for the carbon-intensity data shown, if any.
	Attribution string `json:"attribution,omitempty"`
}

type handler struct {
	deps    Deps
	log     *slog.Logger
	page    *template.Template
	version string // of the static assets, for cache busting
}

// Register adds the page, its JSON feed and its static assets to e.
func Register(e *echo.Echo, deps Deps) {
	if deps.Summaries == nil {
		panic("ui: Deps.Summaries is nil")
	}
	h := &handler{deps: deps, log: deps.Logger, version: assetsVersion()}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.page = template.Must(template.New("index.html").ParseFS(templateFS, "templates/index.html"))
	e.GET(PathPage, h.servePage)
	e.GET(PathFleet, h.serveFleet)
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	files := echo.StaticDirectoryHandler(sub, true)
	e.GET(PathStatic, func(c echo.Context) error {
		// The page links assets with ?v=<version>: those URLs never change content.
		if c.QueryParam("v") == h.version {
			c.Response().Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			c.Response().Header().Set("Cache-Control", "no-cache")
		}
		return files(c)
	})
}

func assetsVersion() string {
	sum := sha256.New()
	_ = fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := staticFS.ReadFile(p)
			sum.Write([]byte(p))
			sum.Write(b)
		}
		return err
	})
	return hex.EncodeToString(sum.Sum(nil))[:12]
}

func tenantOf(c echo.Context) string {
	t, _ := c.Get(ContextKeyTenant).(string)
	return t
}

func (h *handler) fleet(c echo.Context) (Fleet, error) {
	sites, err := h.deps.Summaries(c.Request().Context(), tenantOf(c))
	if err != nil {
		return Fleet{}, err
	}
	if sites == nil {
		sites = []summary.SiteSummary{}
	}
	f := Fleet{Sites: sites, Totals: summary.Total(sites), At: time.Now().UTC()}
	f.Since = f.At.Truncate(24 * time.Hour)
	if len(sites) > 0 {
		f.At, f.Since = sites[0].At, sites[0].Since
	}
	for _, s := range sites {
		if strings.Contains(s.CarbonProvider, "electricitymaps") {
			f.Attribution = carbon.Attribution
		}
	}
	return f, nil
}

func (h *handler) serveFleet(c echo.Context) error {
	f, err := h.fleet(c)
	if err != nil {
		return fmt.Errorf("fleet summary: %w", err)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, f)
}

// contentSecurityPolicy allows only this server's own scripts, styles and data.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (h *handler) servePage(c echo.Context) error {
	code := http.StatusOK
	f, err := h.fleet(c)
	data := pageData{Version: h.version, RefreshSeconds: int(RefreshInterval / time.Second)}
	if err != nil {
		h.log.Error("fleet summary for the page", "error", err)
		code, data.Error = http.StatusInternalServerError, "The fleet summary could not be computed; retrying."
	} else {
		data.fill(f)
	}
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, data); err != nil {
		return fmt.Errorf("render page: %w", err)
	}
	hd := c.Response().Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	return c.HTMLBlob(code, buf.Bytes())
}

// pageData is what the template shows: every figure already formatted.
type pageData struct {
	Version        string
	RefreshSeconds int
	Error          string
	At, Since      string
	Totals         []totalCell
	Sites          []siteRow
	Attribution    string
}

type totalCell struct{ Key, Label, Value string }

type siteRow struct {
	ID, Name, Zone                       string
	ITPower, ITLoad, FacilityPower, PUE  string
	PUEBasis, Inlet, Intensity, Provider string
	Badge, Energy, CO2e, Warnings        string
}

func (d *pageData) fill(f Fleet) {
	d.At = f.At.UTC().Format("2006-01-02 15:04:05 UTC")
	d.Since = f.Since.UTC().Format("15:04 UTC")
	d.Attribution = f.Attribution
	t := f.Totals
	var it, fac, kwh, kg *float64
	if t.Sites > 0 {
		it, fac, kwh, kg = &t.ITPowerW, &t.FacilityPowerW, &t.EnergyTodayKWh, &t.CO2eTodayKg
	}
	d.Totals = []totalCell{
		{"sites", "Sites", fmt.Sprint(t.Sites)},
		{"it_power_watts", "IT power", fmtPower(it)},
		{"facility_power_watts", "Facility power", fmtPower(fac)},
		{"pue", "PUE", fmtPUE(t.PUE)},
		{"energy_today_kwh", "Energy today", fmtEnergy(kwh)},
		{"co2e_today_kg", "CO₂e today", fmtCO2e(kg)},
		{"carbon_intensity_today_grams_per_kwh", "Intensity today", fmtIntensity(t.CarbonIntensityToday)},
	}
	for _, s := range f.Sites {
		d.Sites = append(d.Sites, siteRow{
			ID: s.ID, Name: s.Name, Zone: s.Zone,
			ITPower: fmtPower(s.ITPowerW), ITLoad: fmtLoad(s.ITPowerW, s.ITCapacityKW),
			FacilityPower: fmtPower(s.FacilityPowerW),
			PUE:           fmtPUE(s.PUE), PUEBasis: s.PUEBasis,
			Inlet:     fmtTemp(s.InletTempC),
			Intensity: fmtIntensity(s.CarbonIntensity), Provider: s.CarbonProvider, Badge: providerBadge(s.CarbonProvider),
			Energy: fmtEnergy(s.EnergyTodayKWh), CO2e: fmtCO2e(s.CO2eTodayKg),
			Warnings: strings.Join(s.Warnings, "; "),
		})
	}
}
