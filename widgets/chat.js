// chat.js: ChatWidget, a chat in a cell: the transcript (streamed replies shown live) and an input box.
// DOM: .miniagents-chat > .miniagents-chat-transcript (.miniagents-message blocks, see live.js)
//      + .miniagents-chat-controls > textarea.miniagents-chat-input, button.miniagents-chat-send,
//        button.miniagents-chat-stop; .miniagents-chat-status.
// Enter sends, Shift+Enter inserts a new line. Phase ("waiting" | "replying" | "stopped") is a trait.
// (live.js, prepended by Python, provides LiveDocument and MessageBlock.)

const PHASE_TEXT = {
  waiting: "Your turn: Enter sends, Shift+Enter inserts a new line.",
  replying: "Replying... (what you send now is kept for the next turn)",
  stopped: "The chat has ended.",
};

function render({ model, el }) {
  const root = element("div", "miniagents-chat");
  const transcript = element("div", "miniagents-chat-transcript");
  const controls = element("div", "miniagents-chat-controls");
  const input = element("textarea", "miniagents-chat-input");
  input.rows = 2;
  input.placeholder = "Type a message";
  input.setAttribute("data-lm-suppress-shortcuts", "true"); // keep JupyterLab's Enter / Shift+Enter away
  const send = element("button", "miniagents-chat-send", "Send");
  const stop = element("button", "miniagents-chat-stop", "Stop");
  const status = element("div", "miniagents-chat-status");
  controls.append(input, send, stop);
  root.append(transcript, controls, status);
  el.appendChild(root);

  const blocks = new Map();
  let localPhase = null; // set when this view sent a message, until the kernel's phase changes

  const blockFor = (message) => blockIn(blocks, message);

  const keepScrolledDown = (change) => {
    const atBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
    change();
    if (atBottom) transcript.scrollTop = transcript.scrollHeight;
  };

  const phase = () => localPhase || model.get("phase");

  const showPhase = () => {
    const current = phase();
    root.dataset.phase = current;
    status.textContent = PHASE_TEXT[current] || "";
    send.disabled = current === "stopped";
    stop.disabled = current === "stopped";
    input.disabled = current === "stopped";
  };

  // Sending while the other side replies is allowed: the kernel keeps the message for the next turn.
  const submit = () => {
    const text = input.value;
    if (phase() === "stopped" || text.trim() === "") return;
    model.send({ type: "user-input", text });
    input.value = "";
    localPhase = "replying";
    showPhase();
  };

  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.stopPropagation();
    if (event.shiftKey || event.isComposing) return; // a new line
    event.preventDefault();
    submit();
  });
  send.addEventListener("click", submit);
  stop.addEventListener("click", () => model.send({ type: "stop" }));

  const onPhase = () => {
    localPhase = null;
    showPhase();
  };
  model.on("change:phase", onPhase);
  showPhase();

  const documentCopy = new LiveDocument(model, {
    onMessage: (message) => keepScrolledDown(() => blockFor(message).update(message)),
    onText: (message, chunk) => keepScrolledDown(() => blockFor(message).appendText(chunk)),
    onEvent: (kind, id, value) => {
      if (kind === "order") keepScrolledDown(() => showOrder(value));
    },
    onState: (state) => {
      if (Array.isArray(state.order)) showOrder(state.order);
    },
  });

  const showOrder = (ids) => {
    const wanted = ids.map((id) => blockFor(documentCopy.message(id)).el);
    wanted.forEach((child, index) => {
      if (transcript.children[index] !== child) transcript.insertBefore(child, transcript.children[index] || null);
    });
    while (transcript.children.length > wanted.length) transcript.lastChild.remove();
  };

  const stopSync = documentCopy.start();
  return () => {
    stopSync();
    model.off("change:phase", onPhase);
  };
}

export default { render };
