// stream.js: MessageStreamWidget, one block per message of a reply, text growing as tokens arrive.
// DOM: .miniagents-stream > .miniagents-message[data-status=streaming|done|failed]
//      > .miniagents-message-header (sender, role · model) + .miniagents-message-body
// (live.js, prepended by Python, provides LiveDocument and MessageBlock.)

function render({ model, el }) {
  const root = element("div", "miniagents-stream");
  el.appendChild(root);
  const blocks = new Map();
  let order = [];

  const blockFor = (message) => blockIn(blocks, message);

  const showOrder = (ids) => {
    order = ids;
    const wanted = order.map((id) => blockFor(documentCopy.message(id)));
    wanted.forEach((block, index) => {
      if (root.children[index] !== block.el) root.insertBefore(block.el, root.children[index] || null);
    });
    while (root.children.length > wanted.length) root.lastChild.remove();
  };

  const documentCopy = new LiveDocument(model, {
    onMessage: (message) => blockFor(message).update(message),
    onText: (message, chunk) => blockFor(message).appendText(chunk),
    onEvent: (kind, id, value) => {
      if (kind === "order") showOrder(value);
    },
    onState: (state) => {
      if (Array.isArray(state.order)) showOrder(state.order);
      root.dataset.status = state.live === false ? "done" : "streaming";
    },
  });
  return documentCopy.start(el);
}

export default { render };
