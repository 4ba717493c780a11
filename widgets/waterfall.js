// waterfall.js: the drawing of a timeline, one bar per agent call, nested under its caller (SPEC 5.8).
// Python prepends live.js (for `element`) and appends the file of the view using it (timeline.js).
// DOM: .miniagents-timeline[data-live=true|false][data-scale=seconds|steps]
//      > .miniagents-timeline-summary, .miniagents-timeline-axis (.miniagents-timeline-tick),
//        .miniagents-timeline-rows > .miniagents-timeline-row[data-call-id][data-agent]
//          [data-status=pending|running|finished|failed][data-critical] (title: what hovering says)
//          > .miniagents-timeline-label, .miniagents-timeline-track > .miniagents-timeline-bar,
//            .miniagents-timeline-time
// Times come from the kernel in seconds since the tree was made (`started`, `ended`; `ended` is null while the
// call runs) with the kernel's `now` per batch; they are drawn from the first start on, and between batches
// running bars grow on the page's own clock.
// Agent names and errors only ever reach the page as text (textContent, title).

const WATERFALL_STATUSES = new Set(["pending", "running", "finished", "failed"]);
const WATERFALL_TICK_MS = 100; // how often running bars grow between batches

function waterfallStep(span, scale) {
  const raw = span / 5;
  if (scale === "steps") return Math.max(1, Math.ceil(raw));
  const power = 10 ** Math.floor(Math.log10(raw));
  for (const factor of [1, 2, 2.5, 5, 10]) if (raw <= factor * power) return factor * power;
  return 10 * power;
}

function waterfallLength(length, scale) {
  return scale === "seconds" ? `${length.toFixed(3)} s` : `${length} step${length === 1 ? "" : "s"}`;
}

function waterfallPoint(value, scale) {
  return scale === "seconds" ? `${value.toFixed(3)} s` : `step ${value}`;
}

class WaterfallRow {
  constructor(id) {
    this.el = element("div", "miniagents-timeline-row");
    this.el.dataset.callId = id;
    this.label = element("span", "miniagents-timeline-label");
    this.track = element("div", "miniagents-timeline-track");
    this.bar = element("div", "miniagents-timeline-bar");
    this.track.appendChild(this.bar);
    this.time = element("span", "miniagents-timeline-time");
    this.el.append(this.label, this.track, this.time);
  }
}

class Waterfall {
  constructor() {
    this.el = element("div", "miniagents-timeline");
    this.summary = element("div", "miniagents-timeline-summary");
    this.axis = element("div", "miniagents-timeline-axis");
    this.rowsEl = element("div", "miniagents-timeline-rows");
    this.el.append(this.summary, this.axis, this.rowsEl);
    this.calls = new Map(); // call id -> {agent, parent, children, status, error, started, ended}
    this.rows = new Map(); // call id -> WaterfallRow
    this.roots = [];
    this.scale = "seconds";
    this.now = 0; // the kernel's latest `now`
    this.offset = null; // kernel seconds minus page seconds (the largest seen: the least delayed batch)
    this.live = false;
    this.timer = null;
    this.stopped = false;
    this.attached = false;
    this.el.dataset.scale = this.scale;
    this.draw();
  }

  updateCall(id, fields) {
    let call = this.calls.get(id);
    if (call === undefined) {
      call = { children: [] };
      this.calls.set(id, call);
    }
    Object.assign(call, fields);
    // a view without clock events (the tree's tab) still knows the kernel's time was at least this
    for (const time of [fields.started, fields.ended]) if (typeof time === "number" && time > this.now) this.setClock(time);
  }

  setRoots(ids) {
    this.roots = Array.isArray(ids) ? ids : [];
  }

  // Calls the kernel no longer keeps (a tree's bounded window folded them away).
  forgetCalls(ids) {
    for (const id of ids) {
      this.calls.delete(id);
      const row = this.rows.get(id);
      if (row !== undefined) row.el.remove();
      this.rows.delete(id);
    }
  }

  setClock(now) {
    if (typeof now !== "number") return;
    this.now = now;
    const offset = now - performance.now() / 1000;
    if (this.offset === null || offset > this.offset) this.offset = offset;
  }

  setScale(scale) {
    if (scale === "seconds" || scale === "steps") this.scale = scale;
  }

  setLive(live) {
    this.live = live !== false;
  }

  // The calls depth first (callers before the calls they made), each with its depth.
  ordered() {
    const order = [];
    const seen = new Set();
    const add = (id, depth) => {
      if (seen.has(id) || !this.calls.has(id)) return;
      seen.add(id);
      order.push([id, depth]);
      for (const child of this.calls.get(id).children || []) add(child, depth + 1);
    };
    for (const id of this.roots) add(id, 0);
    return order;
  }

  // [start, end, running] per call in the current scale; running ends at "now".
  times(order) {
    const raw = new Map();
    for (const [id] of order) {
      const call = this.calls.get(id);
      const started = typeof call.started === "number" ? call.started : null;
      raw.set(id, [started, started !== null && typeof call.ended === "number" ? call.ended : null]);
    }
    // a call owns the calls it makes: its bar ends when they are all done too (timeline.py's _ends_owning_children)
    const settle = (id) => {
      const pair = raw.get(id);
      for (const child of this.calls.get(id).children || []) {
        if (!raw.has(child)) continue;
        const childEnd = settle(child);
        if (pair[1] !== null && childEnd !== null && childEnd > pair[1]) pair[1] = childEnd;
      }
      return pair[1];
    };
    for (const id of this.roots) if (raw.has(id)) settle(id);
    let now = this.live && this.offset !== null ? Math.max(this.now, performance.now() / 1000 + this.offset) : this.now;
    const starts = [...raw.values()].map(([start]) => start).filter((start) => start !== null);
    const origin = starts.length ? Math.min(...starts) : 0;
    now -= origin;
    let convert = (value) => value - origin;
    if (this.scale === "steps") {
      const points = [...new Set([...raw.values()].flat().filter((v) => v !== null))].sort((a, b) => a - b);
      const rank = new Map(points.map((point, index) => [point, index]));
      convert = (value) => rank.get(value);
      now = points.length;
    }
    const times = new Map();
    for (const [id, [start, end]] of raw) {
      if (start === null) times.set(id, [null, null, false]);
      else if (end === null) times.set(id, [convert(start), Math.max(now, convert(start)), true]);
      else times.set(id, [convert(start), convert(end), false]);
    }
    return times;
  }

  // The calls the run's end waited on: the call that ended last, then the one that ended last before it
  // started, and so on; inside each, the same among the calls it made (timeline.py's _critical_path).
  criticalPath(times) {
    const path = new Set();
    const parents = [this.roots];
    while (parents.length) {
      const ids = parents.pop().filter((id) => times.has(id) && times.get(id)[0] !== null);
      ids.sort((a, b) => times.get(b)[1] - times.get(a)[1]); // latest end first (stable: of equals, the first called)
      let window = null; // only calls that ended before this point (null: any)
      for (const id of ids) {
        if (window !== null && times.get(id)[1] > window) continue;
        path.add(id);
        parents.push(this.calls.get(id).children || []);
        window = times.get(id)[0];
      }
    }
    return path;
  }

  draw() {
    if (this.stopped) return;
    const order = this.ordered();
    const times = this.times(order);
    const span = Math.max(0, ...[...times.values()].map(([, end]) => (end === null ? 0 : end))) || 1;
    const critical = this.criticalPath(times);
    this.el.dataset.live = String(this.live);
    this.el.dataset.scale = this.scale;
    const failed = order.filter(([id]) => this.calls.get(id).status === "failed").length;
    this.summary.textContent = order.length
      ? `${order.length} call${order.length === 1 ? "" : "s"} over ${waterfallLength(span, this.scale)}` +
        (failed ? ` · ${failed} failed` : "") + " · critical path outlined"
      : "no agent calls yet";
    this.drawAxis(order.length ? span : 0);
    const elements = [];
    let running = false;
    for (const [id, depth] of order) {
      const call = this.calls.get(id);
      let row = this.rows.get(id);
      if (row === undefined) {
        row = new WaterfallRow(id);
        this.rows.set(id, row);
      }
      const [start, end, isRunning] = times.get(id);
      running = running || isRunning;
      const status = WATERFALL_STATUSES.has(call.status) ? call.status : "running";
      row.el.dataset.status = status;
      row.el.dataset.agent = call.agent || "";
      if (critical.has(id)) row.el.dataset.critical = "true";
      else delete row.el.dataset.critical;
      row.label.textContent = call.agent || "";
      row.label.style.paddingLeft = `${Math.min(depth, 8) * 12}px`;
      const parts = [call.agent || "", status];
      if (start === null) {
        row.bar.hidden = true;
        row.time.textContent = "";
      } else {
        row.bar.hidden = false;
        row.bar.style.left = `${(start / span) * 100}%`;
        row.bar.style.width = `max(2px, ${((end - start) / span) * 100}%)`;
        row.time.textContent = waterfallLength(end - start, this.scale);
        parts.push(
          `${waterfallLength(end - start, this.scale)} (${waterfallPoint(start, this.scale)} to ` +
            `${waterfallPoint(end, this.scale)}${isRunning ? ", running" : ""})`,
        );
      }
      if (critical.has(id)) parts.push("critical path");
      row.el.title = parts.join(" · ") + (call.error ? `\n${call.error}` : "");
      elements.push(row.el);
    }
    elements.forEach((child, index) => {
      if (this.rowsEl.children[index] !== child) this.rowsEl.insertBefore(child, this.rowsEl.children[index] || null);
    });
    while (this.rowsEl.children.length > elements.length) this.rowsEl.lastChild.remove();
    this.scheduleTick(running && this.live && this.scale === "seconds");
  }

  drawAxis(span) {
    const ticks = [];
    if (span > 0) {
      const step = waterfallStep(span, this.scale);
      for (let value = 0; value <= span + 1e-9; value += step) {
        const tick = element("span", "miniagents-timeline-tick", this.scale === "seconds" ? `${+value.toFixed(6)} s` : `${value}`);
        tick.style.left = `${(value / span) * 100}%`;
        ticks.push(tick);
      }
    }
    const track = element("div", "miniagents-timeline-axis-track");
    track.append(...ticks);
    this.axis.replaceChildren(element("span"), track, element("span"));
  }

  // Running bars grow on the page's clock while the view is on the page.
  scheduleTick(wanted) {
    if (this.el.isConnected) this.attached = true;
    const retired = this.attached && !this.el.isConnected;
    if (!wanted || retired) {
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      return;
    }
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.draw();
      }, WATERFALL_TICK_MS);
    }
  }

  stop() {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}

// Two tabs over a view: its own content ("Tree") and a Waterfall of the same calls ("Timeline"). A view feeds
// it the call events and states it gets (the tree's calls carry `started` / `ended`); the waterfall is drawn only
// while its tab shows.
class TimelineTabs {
  constructor(content, names = ["Tree", "Timeline"]) {
    this.el = element("div", "miniagents-tabs");
    this.bar = element("div", "miniagents-tab-bar");
    this.bar.setAttribute("role", "tablist");
    this.content = content;
    this.waterfall = new Waterfall();
    this.panels = [content, this.waterfall.el];
    this.buttons = names.map((name, index) => {
      const button = element("button", "miniagents-tab", name);
      button.type = "button";
      button.setAttribute("role", "tab");
      button.addEventListener("click", () => this.show(index));
      return button;
    });
    this.bar.append(...this.buttons);
    this.el.append(this.bar, ...this.panels);
    this.show(0);
  }

  show(index) {
    this.shown = index;
    // (style, not the hidden attribute: the panels' own display rules would win over it)
    this.panels.forEach((panel, each) => (panel.style.display = each === index ? "" : "none"));
    this.buttons.forEach((button, each) => button.setAttribute("aria-selected", String(each === index)));
    this.el.dataset.tab = index === 0 ? "content" : "timeline";
    this.refresh();
  }

  updateCall(id, fields) {
    this.waterfall.updateCall(id, fields);
  }

  setRoots(ids) {
    this.waterfall.setRoots(ids);
  }

  forgetCalls(ids) {
    this.waterfall.forgetCalls(ids);
  }

  // After a batch of events: the document is live.
  batch() {
    this.waterfall.setLive(true);
    this.refresh();
  }

  // After a state (quiet point, snapshot): its `live` and `now` say the rest.
  setState(state) {
    this.waterfall.setLive(state.live);
    this.waterfall.setClock(state.now);
    this.refresh();
  }

  refresh() {
    if (this.shown === 1) this.waterfall.draw();
  }

  stop() {
    this.waterfall.stop();
  }
}
