// rosmind browser teleop: Pointer Events (touch + mouse), one websocket, ~20 Hz input messages.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token") || "";
  const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
    (token ? "?token=" + encodeURIComponent(token) : "");
  const stick = { x: 0, y: 0 };           // [-1, 1], y up = +1
  const holds = new Map();                 // pointerId -> [axis, sign]
  let deadmanPointers = new Set();
  let deadmanKey = false;
  let buttons = [];
  let ws = null;
  let lastUrl = null;

  function setConn(text, cls) { const c = $("conn"); c.textContent = text; c.className = cls; }

  function connect() {
    ws = new WebSocket(wsUrl);
    ws.binaryType = "blob";
    ws.onopen = () => setConn("connected", "ok");
    ws.onclose = () => { setConn("disconnected", "bad"); setTimeout(connect, 1000); };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") {
        const url = URL.createObjectURL(ev.data);
        const img = $("camera");
        img.onload = () => { if (lastUrl) URL.revokeObjectURL(lastUrl); lastUrl = url; };
        img.src = url;
        img.style.display = "block";
        $("nocam").style.display = "none";
        return;
      }
      const m = JSON.parse(ev.data);
      if (m.type === "hello") {
        setConn(m.role === "controller" ? "connected" : "viewer (another page controls)",
                m.role === "controller" ? "ok" : "viewer");
      } else if (m.type === "status") {
        if (m.wrench) {
          const f = m.wrench.slice(0, 3);
          $("fnorm").textContent = Math.hypot(f[0], f[1], f[2]).toFixed(1);
          $("fvec").textContent = "(" + f.map((v) => v.toFixed(1)).join(", ") + ")";
        }
        if (typeof m.gripper === "number") $("gstate").textContent = m.gripper > 0.5 ? "closed" : "open";
      }
    };
  }

  function deadman() { return deadmanPointers.size > 0 || deadmanKey; }

  function twist() {
    const t = [stick.y, -stick.x, 0, 0, 0, 0];  // up = +x, left = +y (base frame)
    for (const [axis, sign] of holds.values()) t[axis] = Math.max(-1, Math.min(1, t[axis] + sign));
    return t;
  }

  setInterval(() => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: "input", twist: twist(), deadman: deadman(), buttons }));
    buttons = [];
    $("deadman").classList.toggle("active", deadman());
  }, 50);

  // Joystick: drag inside the pad; the knob follows, clamped to the rim.
  const pad = $("joystick"), knob = $("knob");
  let stickPointer = null;
  function moveStick(ev) {
    const r = pad.getBoundingClientRect();
    const R = r.width / 2;
    let dx = ev.clientX - (r.left + R), dy = ev.clientY - (r.top + R);
    const n = Math.hypot(dx, dy);
    if (n > R) { dx *= R / n; dy *= R / n; }
    stick.x = dx / R; stick.y = -dy / R;
    knob.style.transform = "translate(" + dx + "px," + dy + "px)";
  }
  function endStick(ev) {
    if (ev.pointerId !== stickPointer) return;
    stickPointer = null; stick.x = 0; stick.y = 0; knob.style.transform = "";
  }
  pad.addEventListener("pointerdown", (ev) => {
    ev.preventDefault(); stickPointer = ev.pointerId; pad.setPointerCapture(ev.pointerId); moveStick(ev);
  });
  pad.addEventListener("pointermove", (ev) => { if (ev.pointerId === stickPointer) moveStick(ev); });
  pad.addEventListener("pointerup", endStick);
  pad.addEventListener("pointercancel", endStick);

  // Hold buttons (z, yaw): active while pressed.
  for (const b of document.querySelectorAll("button.hold")) {
    const spec = [Number(b.dataset.axis), Number(b.dataset.sign)];
    b.addEventListener("pointerdown", (ev) => {
      ev.preventDefault(); b.setPointerCapture(ev.pointerId); holds.set(ev.pointerId, spec);
      b.classList.add("active");
    });
    const up = (ev) => { holds.delete(ev.pointerId); b.classList.remove("active"); };
    b.addEventListener("pointerup", up);
    b.addEventListener("pointercancel", up);
  }

  const dm = $("deadman");
  dm.addEventListener("pointerdown", (ev) => {
    ev.preventDefault(); dm.setPointerCapture(ev.pointerId); deadmanPointers.add(ev.pointerId);
  });
  const dmUp = (ev) => deadmanPointers.delete(ev.pointerId);
  dm.addEventListener("pointerup", dmUp);
  dm.addEventListener("pointercancel", dmUp);
  dm.addEventListener("contextmenu", (ev) => ev.preventDefault());  // long-press on phones

  $("gripper").addEventListener("click", () => buttons.push("gripper_toggle"));

  document.addEventListener("keydown", (ev) => { if (ev.code === "Space") { deadmanKey = true; ev.preventDefault(); } });
  document.addEventListener("keyup", (ev) => { if (ev.code === "Space") deadmanKey = false; });
  function releaseAll() {
    deadmanPointers = new Set(); deadmanKey = false; holds.clear();
    stick.x = 0; stick.y = 0; knob.style.transform = "";
  }
  window.addEventListener("blur", releaseAll);
  document.addEventListener("visibilitychange", () => { if (document.hidden) releaseAll(); });

  connect();
})();
