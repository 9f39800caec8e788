// greenloop fleet page: refreshes the server-rendered figures from
// /api/v1/fleet. Number formats match web/ui/format.go.
"use strict";

(function () {
  const NONE = "\u2014";
  const FEED = "/api/v1/fleet";

  const fmt = {
    power(w) {
      if (w == null) return NONE;
      const a = Math.abs(w);
      if (a >= 1e6) return (w / 1e6).toFixed(2) + " MW";
      if (a >= 1e3) return (w / 1e3).toFixed(1) + " kW";
      return w.toFixed(0) + " W";
    },
    pue(p) { return p == null ? NONE : p.toFixed(2); },
    temp(c) { return c == null ? NONE : c.toFixed(1) + " \u00b0C"; },
    intensity(g) { return g == null ? NONE : g.toFixed(0) + " g/kWh"; },
    energy(kwh) {
      if (kwh == null) return NONE;
      return Math.abs(kwh) >= 1000 ? (kwh / 1000).toFixed(2) + " MWh" : kwh.toFixed(1) + " kWh";
    },
    co2e(kg) {
      if (kg == null) return NONE;
      return Math.abs(kg) >= 1000 ? (kg / 1000).toFixed(2) + " t" : kg.toFixed(1) + " kg";
    },
    load(w, capKW) {
      if (w == null || !(capKW > 0)) return "";
      const cap = capKW.toFixed(1).replace(/\.0$/, "");
      return (w / (capKW * 10)).toFixed(0) + " % of " + cap + " kW";
    },
    badge(provider) {
      if (!provider) return "";
      if (provider.includes("replay")) return "2022 replay";
      if (provider === "static") return "static";
      return "";
    },
    time(iso) {
      const d = new Date(iso);
      if (isNaN(d)) return "";
      return d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
    },
  };

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v != null && v !== "") e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c == null || c === "") continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function row(s) {
    const name = el("th", { scope: "row" },
      el("span", { class: "name" }, s.name), " ", el("span", { class: "id" }, s.id));
    if (s.warnings && s.warnings.length) {
      name.append(" ", el("span", { class: "warn", title: s.warnings.join("; ") }, "\u26a0"));
    }
    const load = fmt.load(s.it_power_watts, s.it_capacity_kw);
    const badge = fmt.badge(s.carbon_provider);
    return el("tr", { "data-site": s.id },
      name,
      el("td", {}, el("span", { class: "zone" }, s.zone)),
      el("td", { class: "num", "data-field": "it_power_watts" },
        fmt.power(s.it_power_watts), load ? el("span", { class: "note" }, load) : null),
      el("td", { class: "num", "data-field": "facility_power_watts" }, fmt.power(s.facility_power_watts)),
      el("td", { class: "num", "data-field": "pue", title: s.pue_basis ? "basis: " + s.pue_basis : null }, fmt.pue(s.pue)),
      el("td", { class: "num", "data-field": "inlet_temperature_celsius" }, fmt.temp(s.inlet_temperature_celsius)),
      el("td", { class: "num", "data-field": "carbon_intensity_grams_per_kwh", title: s.carbon_provider ? "provider: " + s.carbon_provider : null },
        fmt.intensity(s.carbon_intensity_grams_per_kwh), badge ? " " : null, badge ? el("span", { class: "badge" }, badge) : null),
      el("td", { class: "num", "data-field": "energy_today_kwh" }, fmt.energy(s.energy_today_kwh)),
      el("td", { class: "num", "data-field": "co2e_today_kg" }, fmt.co2e(s.co2e_today_kg)),
    );
  }

  function setTotal(key, text) {
    const v = document.querySelector('[data-total="' + key + '"] .value');
    if (v) v.textContent = text;
  }

  function render(data) {
    const t = data.totals || {};
    const any = (t.sites || 0) > 0;
    setTotal("sites", String(t.sites || 0));
    setTotal("it_power_watts", fmt.power(any ? t.it_power_watts : null));
    setTotal("facility_power_watts", fmt.power(any ? t.facility_power_watts : null));
    setTotal("pue", fmt.pue(t.pue));
    setTotal("energy_today_kwh", fmt.energy(any ? t.energy_today_kwh : null));
    setTotal("co2e_today_kg", fmt.co2e(any ? t.co2e_today_kg : null));
    setTotal("carbon_intensity_today_grams_per_kwh", fmt.intensity(t.carbon_intensity_today_grams_per_kwh));

    const body = document.querySelector("#sites tbody");
    const rows = (data.sites || []).map(row);
    if (rows.length === 0) {
      rows.push(el("tr", { class: "empty" }, el("td", { colspan: "9" }, "No sites to show.")));
    }
    body.replaceChildren(...rows);

    document.getElementById("status").textContent = "Updated " + fmt.time(data.at);
    if (data.since) document.getElementById("since").textContent = fmt.time(data.since).slice(11, 16) + " UTC";
    const attr = document.getElementById("attribution");
    attr.textContent = data.attribution || "";
    attr.hidden = !data.attribution;
  }

  function showError(msg) {
    const e = document.getElementById("error");
    e.textContent = msg || "";
    e.hidden = !msg;
  }

  async function refresh() {
    try {
      const res = await fetch(FEED, { credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store" });
      if (!res.ok) {
        let msg = res.status + " " + res.statusText;
        try { const b = await res.json(); if (b && b.error) msg = b.error; } catch (_) { /* not JSON */ }
        throw new Error(msg);
      }
      render(await res.json());
      showError("");
    } catch (err) {
      showError("Could not refresh the fleet summary: " + err.message);
    } finally {
      document.body.dataset.ready = "1";
    }
  }

  function start() {
    const secs = Number(document.body.dataset.refreshSeconds) || 10;
    refresh();
    setInterval(refresh, secs * 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
