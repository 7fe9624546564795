// A small SVG line chart (no library): lineChart([{label, value}], {title, format}) -> <figure>.
// Points are the days of a trend; a missing value (null) leaves a gap. The figure carries a
// text alternative (every point as "label: value") for screen readers.
const SVG = "http://www.w3.org/2000/svg";

function node(tag, attributes = {}, text = "") {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text) element.textContent = text;
  return element;
}

export function lineChart(points, { title, format = String, width = 260, height = 90 } = {}) {
  const pad = { left: 6, right: 6, top: 10, bottom: 18 };
  const values = points.map((p) => p.value).filter((v) => v !== null && Number.isFinite(v));
  const max = values.length ? Math.max(...values) : 1;
  const min = values.length ? Math.min(0, ...values) : 0;
  const span = max - min || 1;
  const step = points.length > 1 ? (width - pad.left - pad.right) / (points.length - 1) : 0;
  const x = (i) => pad.left + i * step;
  const y = (v) => pad.top + (1 - (v - min) / span) * (height - pad.top - pad.bottom);
  const described = points.map((p) => `${p.label}: ${p.value === null ? "–" : format(p.value)}`).join(", ");
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": `${title}: ${described}` });
  svg.append(node("line", { x1: pad.left, x2: width - pad.right, y1: y(min), y2: y(min), class: "axis" }));
  let path = "";
  points.forEach((p, i) => {
    if (p.value === null || !Number.isFinite(p.value)) return;
    const previous = i > 0 && points[i - 1].value !== null && Number.isFinite(points[i - 1].value);
    path += `${previous ? "L" : "M"}${x(i).toFixed(1)},${y(p.value).toFixed(1)} `;
    const dot = node("circle", { cx: x(i), cy: y(p.value), r: 2.5, class: "point" });
    dot.append(node("title", {}, `${p.label}: ${format(p.value)}`));
    svg.append(dot);
  });
  if (path) svg.prepend(node("path", { d: path.trim(), class: "line" }));
  if (points.length) {
    svg.append(node("text", { x: pad.left, y: height - 4, class: "tick" }, points[0].label));
    svg.append(node("text", { x: width - pad.right, y: height - 4, "text-anchor": "end", class: "tick" }, points[points.length - 1].label));
  }
  const figure = document.createElement("figure");
  figure.className = "chart";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption, svg);
  return figure;
}
