// The dashboard's own script. Every page renders in full on the server and works without it;
// here the throughput panel's sparkline becomes a uPlot chart (when uPlot is loaded), again
// after each live update swaps the panel in.
(function () {
  "use strict";

  var SERIES = [
    {},
    { label: "GET/s", stroke: "#2f5fb3", width: 1.5 },
    { label: "PUT/s", stroke: "#1f8a4c", width: 1.5 },
    { label: "out MB/s", stroke: "#8e44ad", scale: "mb", show: false },
    { label: "in MB/s", stroke: "#16a085", scale: "mb", show: false },
    { label: "p50 ms", stroke: "#c27c0e", scale: "ms" },
    { label: "p99 ms", stroke: "#c0392b", scale: "ms" }
  ];

  function draw(root) {
    if (typeof window.uPlot === "undefined" || !root.querySelectorAll) {
      return;
    }
    root.querySelectorAll(".chart[data-series]").forEach(function (element) {
      var data = JSON.parse(element.getAttribute("data-series"));
      if (!data.length || data[0].length < 2) {
        return; // the sparkline stays until there are two points to draw
      }
      element.textContent = "";
      new window.uPlot(
        {
          width: Math.max(element.clientWidth, 320),
          height: 170,
          series: SERIES,
          axes: [{}, { label: "req/s" }, { scale: "ms", side: 1, label: "ms", grid: { show: false } }]
        },
        data,
        element
      );
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    draw(document);
  });
  // A live update swaps the panel in; htmx settles it a moment later.
  ["htmx:afterSettle", "htmx:sseMessage"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      draw(event.target);
    });
  });
})();
