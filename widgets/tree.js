// tree.js: MessageTree, the live tree of the agent calls of a run, one collapsible node per call.
// DOM: .miniagents-tree > .miniagents-call[data-agent=ALIAS][data-status=running|finished|failed]
//      (or data-status=pending: a lazy call, start_asap=False, that nothing has consumed yet)
//      > details > summary (agent, status, duration · tokens · kwargs), .miniagents-call-error,
//        .miniagents-call-section (input / replies: .miniagents-message blocks),
//        .miniagents-call-children (the nested .miniagents-call nodes)
// (live.js, prepended by Python, provides LiveDocument and MessageBlock.)

const SHOWN_STATUS = { pending: "pending", running: "running", finished: "finished", failed: "failed" };

class CallNode {
  constructor(id) {
    this.id = id;
    this.data = { inputs: [], replies: [], children: [] };
    this.el = element("div", "miniagents-call");
    this.el.dataset.callId = id;
    const details = element("details");
    details.open = true;
    const summary = element("summary");
    const title = element("span", "miniagents-call-title");
    this.agent = element("span", "miniagents-call-agent");
    this.status = element("span", "miniagents-call-status");
    this.meta = element("span", "miniagents-call-meta");
    title.append(this.agent, this.status, this.meta);
    summary.appendChild(title);
    this.error = element("div", "miniagents-call-error");
    this.error.hidden = true;
    this.inputs = this.section("input");
    this.replies = this.section("replies");
    this.children = element("div", "miniagents-call-children");
    details.append(summary, this.error, this.inputs.el, this.replies.el, this.children);
    this.el.appendChild(details);
  }

  section(title) {
    const el = element("div", "miniagents-call-section");
    el.append(element("div", "miniagents-call-section-title", title));
    const list = element("div", "miniagents-call-section-messages");
    el.appendChild(list);
    el.hidden = true;
    return { el, list };
  }
}

function render({ model, el }) {
  const root = element("div", "miniagents-tree");
  const empty = element("div", "miniagents-tree-empty", "no agent calls yet");
  root.appendChild(empty);
  el.appendChild(root);
  const nodes = new Map(); // call id -> CallNode
  const placements = new Map(); // message id -> Map(placement key -> MessageBlock)
  const dirtyCalls = new Set();
  let documentCopy = null;

  const node = (id) => {
    let found = nodes.get(id);
    if (found === undefined) {
      found = new CallNode(id);
      nodes.set(id, found);
    }
    return found;
  };

  const blockAt = (messageId, key) => {
    let byKey = placements.get(messageId);
    if (byKey === undefined) {
      byKey = new Map();
      placements.set(messageId, byKey);
    }
    let block = byKey.get(key);
    if (block === undefined) {
      block = new MessageBlock();
      block.update(documentCopy.message(messageId));
      byKey.set(key, block);
    }
    return block;
  };

  const placeChildren = (container, elements) => {
    elements.forEach((child, index) => {
      if (container.children[index] !== child) container.insertBefore(child, container.children[index] || null);
    });
    while (container.children.length > elements.length) container.lastChild.remove();
  };

  const refreshCall = (id) => {
    const call = node(id);
    const data = call.data;
    call.el.dataset.agent = data.agent || "";
    call.el.dataset.status = SHOWN_STATUS[data.status] || "running";
    call.agent.textContent = data.agent || "";
    call.status.textContent = data.status || "";
    call.error.hidden = !data.error;
    call.error.textContent = data.error || "";
    const tokens = data.replies.reduce((sum, m) => sum + (documentCopy.message(m).tokens || 0), 0);
    const meta = [];
    if (typeof data.duration === "number") meta.push(`${data.duration.toFixed(3)} s`);
    meta.push(`${tokens} token${tokens === 1 ? "" : "s"}`);
    const kwargs = Object.entries(data.kwargs || {});
    if (kwargs.length) meta.push(kwargs.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", "));
    call.meta.textContent = meta.join(" · ");
    for (const part of ["inputs", "replies"]) {
      const section = call[part];
      section.el.hidden = data[part].length === 0;
      placeChildren(section.list, data[part].map((m) => blockAt(m, `${id}:${part}`).el));
    }
    placeChildren(call.children, data.children.map((child) => node(child).el));
  };

  const showRoots = (ids) => {
    empty.hidden = ids.length > 0;
    placeChildren(root, [empty, ...ids.map((id) => node(id).el)]);
  };

  const updateCall = (id, fields) => {
    Object.assign(node(id).data, fields);
    dirtyCalls.add(id);
  };

  const flushCalls = () => {
    for (const id of dirtyCalls) refreshCall(id);
    dirtyCalls.clear();
  };

  const markCallsShowing = (messageId) => {
    for (const [id, call] of nodes) if (call.data.replies.includes(messageId)) dirtyCalls.add(id);
  };

  documentCopy = new LiveDocument(model, {
    onMessage: (message) => {
      for (const block of (placements.get(message.id) || new Map()).values()) block.update(message);
      markCallsShowing(message.id);
    },
    onText: (message, chunk) => {
      for (const block of (placements.get(message.id) || new Map()).values()) block.appendText(chunk);
    },
    onEvent: (kind, id, value) => {
      if (kind === "call") updateCall(id, value);
      else if (kind === "roots") showRoots(value);
    },
    onState: (state) => {
      for (const [id, fields] of Object.entries(state.calls || {})) updateCall(id, fields);
      if (Array.isArray(state.roots)) showRoots(state.roots);
      flushCalls();
    },
    onBatch: flushCalls,
  });
  return documentCopy.start(el);
}

export default { render };
