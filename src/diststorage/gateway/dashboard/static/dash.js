// The dashboard's own script. Everything works without it (pages render in full on the
// server); it only draws the throughput and latency charts once uPlot is there.
"use strict";
