package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/internal/config"
)

// siteJSON is a site as the API shows it: no meters or report fields.
type siteJSON struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Zone         string          `json:"zone"`
	Location     config.Location `json:"location"`
	ITCapacityKW float64         `json:"it_capacity_kw"`
}

type sitesJSON struct {
	Sites []siteJSON `json:"sites"`
}

// sites lists the caller's tenant's sites (every site when auth is off).
func (s *Server) sites(c echo.Context, id Identity) error {
	out := sitesJSON{Sites: []siteJSON{}}
	for _, st := range s.siteList() {
		if s.authEnabled() && st.SiteTenant() != id.Tenant {
			continue
		}
		out.Sites = append(out.Sites, siteJSON{ID: st.ID, Name: st.Name, Zone: st.Zone, Location: st.Location, ITCapacityKW: st.ITCapacityKW})
	}
	return c.JSON(http.StatusOK, out)
}

// siteList returns the sites in force: Deps.SiteSource's now, or Deps.Sites.
func (s *Server) siteList() []config.Site {
	if s.deps.SiteSource != nil {
		return s.deps.SiteSource()
	}
	return s.deps.Sites
}
