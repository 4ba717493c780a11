// batch.js: BatchProgressWidget, the live progress of `mn.amap` (miniagents/notebook/batch_widget.py).
// DOM: .miniagents-batch[data-status=running|done|interrupted|failed]
//      > .miniagents-batch-header (agent, inputs, status) + .miniagents-batch-bar (done and failed parts)
//      + .miniagents-batch-counts + .miniagents-batch-stats (rate, ETA, elapsed: live only)
//      + .miniagents-batch-tokens + .miniagents-batch-failures (input and error of each failed row)
// Events: ["summary", "summary", counts] and ["failure", "f<index>", {index, input, error}]. Everything shown
// is set as text (inputs and errors are untrusted), never parsed as HTML.
// (live.js, prepended by Python, provides LiveDocument and element().)

const count = (number) => Number(number || 0).toLocaleString("en-US");

function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 60) return `${whole}s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes}m ${String(whole % 60).padStart(2, "0")}s`;
  return `${Math.floor(minutes / 60)}h ${String(minutes % 60).padStart(2, "0")}m`;
}

function render({ model, el }) {
  const root = element("div", "miniagents-batch");
  const header = element("div", "miniagents-batch-header");
  const agent = element("span", "miniagents-batch-agent");
  const inputs = element("span", "miniagents-batch-inputs");
  const status = element("span", "miniagents-batch-status");
  header.append(agent, inputs, status);
  const bar = element("div", "miniagents-batch-bar");
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  const doneBar = element("div", "miniagents-batch-bar-done");
  const failedBar = element("div", "miniagents-batch-bar-failed");
  bar.append(doneBar, failedBar);
  const counts = element("div", "miniagents-batch-counts");
  const stats = element("div", "miniagents-batch-stats");
  const tokens = element("div", "miniagents-batch-tokens");
  const failuresTitle = element("div", "miniagents-batch-failures-title", "failed");
  const failuresList = element("ul", "miniagents-batch-failures");
  const more = element("li", "miniagents-batch-more");
  root.append(header, bar, counts, stats, tokens, failuresTitle, failuresList);
  el.appendChild(root);

  const failures = new Map(); // id -> <li>
  let summary = null;
  let receivedAt = 0; // performance.now() when `summary` arrived: elapsed and ETA tick on from there

  const showStats = () => {
    if (summary === null || summary.status !== "running") {
      stats.hidden = true;
      return;
    }
    const since = (performance.now() - receivedAt) / 1000;
    const eta = summary.eta === null || summary.eta === undefined ? null : Math.max(0, summary.eta - since);
    stats.hidden = false;
    stats.textContent = `${summary.rate.toFixed(1)}/s · ETA ${duration(eta)} · elapsed ${duration(summary.elapsed + since)}`;
  };

  const showMore = () => {
    const hidden = summary === null ? 0 : summary.failed - failures.size;
    more.textContent = hidden > 0 ? `... and ${count(hidden)} more` : "";
    if (hidden > 0) failuresList.appendChild(more);
    else more.remove();
    failuresTitle.hidden = failuresList.hidden = failures.size === 0;
  };

  const showSummary = (fields) => {
    summary = fields;
    receivedAt = performance.now();
    const total = fields.total || 0;
    const finished = (fields.done || 0) + (fields.failed || 0);
    root.dataset.status = fields.status;
    agent.textContent = fields.agent || "";
    inputs.textContent = `over ${count(total)} inputs`;
    status.textContent = fields.status;
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(finished));
    const share = (part) => `${total ? (100 * part) / total : 0}%`;
    doneBar.style.width = share(fields.done || 0);
    failedBar.style.width = share(fields.failed || 0);
    const parts = `${count(fields.done)} done · ${count(fields.failed)} failed · ${count(fields.running)} running`;
    counts.textContent = `${count(finished)} / ${count(total)} · ${parts}`;
    if (fields.status === "failed" && fields.error) counts.textContent += ` · stopped by ${fields.error}`;
    tokens.textContent = `tokens: ${count(fields.input_tokens)} in · ${count(fields.output_tokens)} out`;
    tokens.hidden = !fields.input_tokens && !fields.output_tokens; // no model call reported usage
    showStats();
    showMore();
  };

  const showFailure = (id, fields) => {
    if (failures.has(id)) return;
    const item = element("li");
    item.append(
      element("span", "miniagents-batch-index", `[${fields.index}]`),
      " ",
      element("code", "miniagents-batch-input", fields.input),
      " ",
      element("span", "miniagents-batch-error", fields.error),
    );
    failures.set(id, item);
    failuresList.insertBefore(item, more.parentNode === failuresList ? more : null);
    showMore();
  };

  const documentCopy = new LiveDocument(model, {
    onMessage: () => {},
    onText: () => {},
    onEvent: (kind, id, value) => {
      if (kind === "summary") showSummary(value);
      else if (kind === "failure") showFailure(id, value);
    },
    onState: (state) => {
      for (const failure of state.failures || []) showFailure(failure.id, failure);
      if (state.summary) showSummary(state.summary);
    },
  });
  showMore();
  const stopFollowing = documentCopy.start(el);
  // elapsed and ETA move on between the kernel's updates (a batch of slow calls may send none for a while)
  let attached = false;
  const ticker = setInterval(() => {
    if (el.isConnected) attached = true;
    else if (attached) return stop(); // the view was taken out of its output: stop ticking
    showStats();
  }, 1000);
  const stop = () => {
    clearInterval(ticker);
    stopFollowing();
  };
  return stop;
}

export default { render };
