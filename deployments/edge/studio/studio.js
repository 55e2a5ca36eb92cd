// linkedin-posts studio: streams a post into a LinkedIn-like preview. Plain DOM, no build step.
// User and model text only ever goes in as text (textContent), never as HTML.
"use strict";

const LIMIT = 3000; // LinkedIn's characters per post
// Where LinkedIn folds a post behind "...see more": about 210 characters or three lines on
// desktop, about 140 characters on mobile (tests/test_studio.py computes the same).
const FOLDS = { desktop: { chars: 210, lines: 3 }, mobile: { chars: 140, lines: 3 } };

const $ = (id) => document.getElementById(id);
const state = { text: "", post: null, view: "desktop", open: false, busy: false };

function foldAt(text, view) {
  const { chars, lines } = FOLDS[view];
  let cut = chars;
  let newline = -1;
  for (let i = 0; i < lines; i++) {
    newline = text.indexOf("\n", newline + 1);
    if (newline < 0) break;
  }
  if (newline >= 0 && newline < cut) cut = newline;
  if (cut >= text.length) return text.length;
  if (text[cut] !== "\n") {
    const space = text.lastIndexOf(" ", cut);
    if (space > 0) cut = space;
  }
  return cut;
}

// Text with its hashtags as links, appended to `node`.
function appendText(node, text) {
  const pattern = /#[\p{L}\p{N}_]+/gu;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    node.append(document.createTextNode(text.slice(last, match.index)));
    const link = document.createElement("a");
    link.href = "https://www.linkedin.com/feed/hashtag/" + encodeURIComponent(match[0].slice(1));
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = match[0];
    node.append(link);
    last = match.index + match[0].length;
  }
  node.append(document.createTextNode(text.slice(last)));
}

function render() {
  const node = $("post");
  const text = state.text;
  const fold = foldAt(text, state.view);
  const folded = !state.open && fold < text.length;
  node.replaceChildren();
  appendText(node, folded ? text.slice(0, fold).replace(/\s+$/, "") : text);
  node.dataset.fold = String(fold);
  node.dataset.length = String(text.length);
  node.dataset.final = state.post ? "yes" : "no";
  $("more").hidden = !folded;
  const counter = $("counter");
  counter.textContent = `${text.length.toLocaleString("en-US")} / 3,000`;
  counter.classList.toggle("over", text.length > LIMIT);
}

function setView(view) {
  state.view = view;
  $("card").className = "card " + view;
  $("desktop").classList.toggle("on", view === "desktop");
  $("mobile").classList.toggle("on", view === "mobile");
  render();
}

function showError(body, status) {
  const box = $("error");
  const error = body && body.error ? body.error : { code: "error", message: String(body) };
  const lines = [`${status ? status + " " : ""}${error.code}: ${error.message}`];
  for (const detail of error.details || []) {
    lines.push(`• ${detail.field ?? ""}: ${detail.message ?? JSON.stringify(detail)}`);
  }
  box.textContent = lines.join("\n");
  box.hidden = false;
  $("status").textContent = "Failed";
}

function request(seed) {
  const value = (id) => $(id).value.trim();
  const body = {
    topic: value("topic"),
    tone: value("tone"),
    length: value("length"),
    num_hashtags: Number(value("num_hashtags") || 0),
    use_cache: $("use_cache").checked,
  };
  if (value("audience")) body.audience = value("audience");
  if (value("call_to_action")) body.call_to_action = value("call_to_action");
  if (seed !== undefined) body.seed = seed;
  else if (value("seed") !== "") body.seed = Number(value("seed"));
  return body;
}

function headers() {
  const key = $("api_key").value.trim();
  sessionStorage.setItem("linkedin-posts-api-key", key); // this tab only
  const all = { "Content-Type": "application/json" };
  if (key) all.Authorization = `Bearer ${key}`;
  return all;
}

function showMeta(post) {
  const meta = $("meta");
  meta.replaceChildren();
  const cache = post.metadata.cache || {};
  const rows = [["cache", cache.hit ? `hit (${cache.layer})` : "written now"]];
  for (const [stage, ms] of Object.entries(post.metadata.timings_ms || {})) {
    rows.push([stage, `${Math.round(ms).toLocaleString("en-US")} ms`]);
  }
  rows.push(["request id", post.metadata.request_id || ""]);
  for (const [name, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    meta.append(dt, dd);
  }
}

function busy(on, label) {
  state.busy = on;
  for (const id of ["generate", "drafts"]) $(id).disabled = on;
  $("regenerate").disabled = on || !state.post;
  $("status").textContent = label;
}

// The parts as they stream: title, body and hashtags assembled as the final text will be.
function streamedText(parts) {
  return [parts.title, parts.content, parts.hashtags].filter((p) => p.trim()).join("\n\n");
}

async function stream(body) {
  $("error").hidden = true;
  $("copied").hidden = true;
  state.post = null;
  state.open = false;
  state.text = "";
  $("copy").disabled = true;
  render();
  busy(true, "Writing…");
  const parts = { title: "", content: "", hashtags: "" };
  try {
    const response = await fetch("/v1/posts/stream", {
      method: "POST", headers: headers(), body: JSON.stringify(body),
    });
    if (!response.ok) {
      showError(await response.json().catch(() => response.statusText), response.status);
      return;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? "null");
        if (name === "meta") {
          $("status").textContent = data.hit ? `Cached (${data.layer})` : "Writing…";
        } else if (name in parts) {
          parts[name] += data.text;
          state.text = streamedText(parts);
          render();
        } else if (name === "post") {
          finish(data);
        } else if (name === "error") {
          showError(data);
        }
      }
    }
    if (!state.post && $("error").hidden) showError("the stream ended without a post");
  } catch (error) {
    showError(String(error));
  } finally {
    busy(false, state.post ? $("status").textContent.replace("Writing…", "Done") : "Failed");
  }
}

function finish(post) {
  state.post = post;
  state.text = post.text;
  render();
  showMeta(post);
  $("copy").disabled = false;
  $("status").textContent = "Done";
}

async function copy() {
  const text = state.post ? state.post.text : "";
  $("copy").dataset.copied = text; // what was copied, readable where the clipboard is not
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  $("copied").hidden = false;
}

function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

async function drafts() {
  $("error").hidden = true;
  busy(true, "Writing 3 drafts…");
  const list = $("draft-list");
  try {
    const requests = [0, 1, 2].map(() => ({ ...request(randomSeed()), use_cache: false }));
    const response = await fetch("/v1/posts/batch", {
      method: "POST", headers: headers(), body: JSON.stringify({ requests }),
    });
    const body = await response.json().catch(() => response.statusText);
    if (!response.ok) {
      showError(body, response.status);
      return;
    }
    list.replaceChildren();
    body.posts.forEach((post, index) => {
      const card = document.createElement("article");
      card.className = "card draft";
      const title = document.createElement("strong");
      title.textContent = `Draft ${index + 1} · ${post.text.length.toLocaleString("en-US")} characters`;
      const text = document.createElement("div");
      text.className = "text";
      appendText(text, post.text);
      const pick = document.createElement("button");
      pick.type = "button";
      pick.textContent = "Use this draft";
      pick.addEventListener("click", () => { state.open = false; finish(post); });
      card.append(title, text, pick);
      list.append(card);
    });
    list.hidden = false;
    $("status").textContent = "3 drafts";
  } catch (error) {
    showError(String(error));
  } finally {
    busy(false, $("status").textContent);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api_key").value = sessionStorage.getItem("linkedin-posts-api-key") || "";
  $("request").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!state.busy) stream(request());
  });
  $("regenerate").addEventListener("click", () => stream({ ...request(randomSeed()), use_cache: false }));
  $("drafts").addEventListener("click", drafts);
  $("copy").addEventListener("click", copy);
  $("more").addEventListener("click", () => { state.open = true; render(); });
  $("desktop").addEventListener("click", () => setView("desktop"));
  $("mobile").addEventListener("click", () => setView("mobile"));
  render();
});
