// timeline.js: Timeline, a live waterfall of the agent calls of a run (miniagents/notebook/timeline.py).
// The document is a MessageTree's (calls with `start` / `end`, roots) plus the kernel's clock; messages in it
// are not drawn. (live.js and waterfall.js, prepended by Python, provide LiveDocument and Waterfall.)

function render({ model, el }) {
  const waterfall = new Waterfall();
  el.appendChild(waterfall.el);
  const documentCopy = new LiveDocument(model, {
    onMessage: () => {},
    onText: () => {},
    onEvent: (kind, id, value) => {
      if (kind === "call") waterfall.updateCall(id, value);
      else if (kind === "roots") waterfall.setRoots(value);
      else if (kind === "clock") waterfall.setClock(value.now);
    },
    onState: (state) => {
      for (const [id, fields] of Object.entries(state.calls || {})) waterfall.updateCall(id, fields);
      if (Array.isArray(state.roots)) waterfall.setRoots(state.roots);
      waterfall.setScale(state.scale);
      waterfall.setClock(state.now);
      waterfall.setLive(state.live);
      waterfall.draw();
    },
    onBatch: () => {
      waterfall.setLive(true); // events come only while the run goes on; the quiet state says when it ends
      waterfall.draw();
    },
  });
  const stop = documentCopy.start(el);
  return () => {
    waterfall.stop();
    stop();
  };
}

export default { render };
