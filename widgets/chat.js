// chat.js: ChatWidget, a chat in a cell: the transcript (streamed replies shown live) and an input box.
// DOM: .miniagents-chat > .miniagents-chat-transcript (.miniagents-message blocks, see live.js)
//      + .miniagents-chat-controls > textarea.miniagents-chat-input, button.miniagents-chat-send,
//        button.miniagents-chat-stop; .miniagents-chat-status.
// Enter sends, Shift+Enter inserts a new line. Phase ("waiting" | "replying" | "stopped") is a trait.
// The input and buttons carry JupyterLab's own classes (styled by it, with fallbacks in controls.css).
// (live.js, prepended by Python, provides LiveDocument and MessageBlock.)

const PHASE_TEXT = {
  waiting: "Your turn: Enter sends, Shift+Enter inserts a new line.",
  replying: "Replying... (what you send now is kept for the next turn)",
  stopped: "The chat has ended.",
};

// What the user was typing, by chat: the kernel replaces the view of a chat each time it goes quiet (so a
// saved notebook holds the transcript), and the new view takes the draft, the caret and the focus over.
const drafts = new Map();

// Focus `input` once it is in the page (a view is rendered before its output area shows it).
function focusWhenShown(input, framesLeft = 30) {
  if (input.isConnected) input.focus({ preventScroll: true });
  else if (framesLeft > 0) requestAnimationFrame(() => focusWhenShown(input, framesLeft - 1));
}

function render({ model, el }) {
  const root = element("div", "miniagents-chat");
  const transcript = element("div", "miniagents-chat-transcript");
  const controls = element("div", "miniagents-chat-controls");
  const input = element("textarea", "miniagents-chat-input jp-mod-styled");
  input.rows = 2;
  input.placeholder = "Type a message";
  input.setAttribute("aria-label", "Message to send");
  input.setAttribute("data-lm-suppress-shortcuts", "true"); // JupyterLab's shortcuts stay out of the box
  const send = element("button", "miniagents-chat-send jp-Button jp-mod-styled jp-mod-accept", "Send");
  const stop = element("button", "miniagents-chat-stop jp-Button jp-mod-styled jp-mod-reject", "Stop");
  send.type = stop.type = "button";
  const status = element("div", "miniagents-chat-status");
  controls.append(input, send, stop);
  root.append(transcript, controls, status);
  el.appendChild(root);

  const chatId = model.get("chat_id");
  const draft = drafts.get(chatId);
  if (draft) {
    input.value = draft.text;
    input.setSelectionRange(draft.start, draft.end);
    if (draft.focused) focusWhenShown(input);
  }
  const keepDraft = () => {
    const focused = document.activeElement === input;
    if (input.value || focused) {
      drafts.set(chatId, { text: input.value, start: input.selectionStart, end: input.selectionEnd, focused });
    } else {
      drafts.delete(chatId);
    }
  };

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
    drafts.delete(chatId);
    localPhase = "replying";
    showPhase();
  };

  // JupyterLab cancels a line break typed in a cell (it is Shift+Enter, "run cell"): on each keydown it
  // watches the input that follows and prevents an `insertLineBreak` inside `.jp-Cell`. So the line break is
  // inserted here, as typed text (which keeps the browser's undo history).
  const insertLineBreak = () => {
    if (!document.execCommand("insertText", false, "\n")) {
      input.setRangeText("\n", input.selectionStart, input.selectionEnd, "end");
      input.dispatchEvent(new Event("input", { bubbles: true }));
    }
  };

  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.isComposing) return;
    event.preventDefault();
    event.stopPropagation();
    if (event.shiftKey) insertLineBreak();
    else if (!event.ctrlKey && !event.metaKey && !event.altKey) submit();
  });
  for (const type of ["input", "select", "focus"]) input.addEventListener(type, keepDraft);
  // (the browser also blurs an input its view removes: only a blur that leaves it in the page is the user's)
  input.addEventListener("blur", () => setTimeout(() => input.isConnected && keepDraft()));
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
      transcript.scrollTop = transcript.scrollHeight;
    },
  });

  const showOrder = (ids) => {
    const wanted = ids.map((id) => blockFor(documentCopy.message(id)).el);
    wanted.forEach((child, index) => {
      if (transcript.children[index] !== child) transcript.insertBefore(child, transcript.children[index] || null);
    });
    while (transcript.children.length > wanted.length) transcript.lastChild.remove();
  };

  const stopSync = documentCopy.start(el);
  return () => {
    stopSync();
    model.off("change:phase", onPhase);
  };
}

export default { render };
