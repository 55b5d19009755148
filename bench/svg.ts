// Two small hand-written SVG charts for BENCHMARKS.md: lines (speed-up vs beam length, one line per beam width) and
// bars (tokens-per-step histogram). No plotting dependency for two charts.

const WIDTH = 560;
const HEIGHT = 320;
const MARGIN = { left: 56, right: 110, top: 36, bottom: 44 };
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function frame(title: string, xLabel: string, yLabel: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="20" text-anchor="middle" font-size="14">${escape(title)}</text>`,
    `<text x="${(MARGIN.left + WIDTH - MARGIN.right) / 2}" y="${HEIGHT - 8}" text-anchor="middle">${escape(xLabel)}</text>`,
    `<text transform="translate(14 ${HEIGHT / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>`,
    ...body,
    '</svg>',
  ].join('\n');
}

export interface Series {
  name: string;
  points: { x: number; y: number }[];
}

export function lineChart(title: string, xLabel: string, yLabel: string, series: Series[], reference?: number): string {
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y)).concat(reference ?? []);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const y0 = Math.min(0, ...ys);
  const y1 = Math.max(...ys) * 1.1 || 1;
  const px = (x: number): number => MARGIN.left + ((x - x0) / (x1 - x0 || 1)) * (WIDTH - MARGIN.left - MARGIN.right);
  const py = (y: number): number => HEIGHT - MARGIN.bottom - ((y - y0) / (y1 - y0)) * (HEIGHT - MARGIN.top - MARGIN.bottom);
  const body: string[] = [
    `<line x1="${MARGIN.left}" y1="${py(y0)}" x2="${WIDTH - MARGIN.right}" y2="${py(y0)}" stroke="black"/>`,
    `<line x1="${MARGIN.left}" y1="${py(y0)}" x2="${MARGIN.left}" y2="${MARGIN.top}" stroke="black"/>`,
  ];
  for (const x of [...new Set(xs)].sort((a, b) => a - b)) {
    body.push(`<text x="${px(x)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle">${x}</text>`);
  }
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4;
    body.push(`<text x="${MARGIN.left - 6}" y="${py(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>`);
    body.push(`<line x1="${MARGIN.left}" y1="${py(y)}" x2="${WIDTH - MARGIN.right}" y2="${py(y)}" stroke="#ddd"/>`);
  }
  if (reference !== undefined) {
    body.push(`<line x1="${MARGIN.left}" y1="${py(reference)}" x2="${WIDTH - MARGIN.right}" y2="${py(reference)}" ` +
      `stroke="#888" stroke-dasharray="4 3"/>`);
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const path = s.points.map((p, j) => `${j ? 'L' : 'M'}${px(p.x).toFixed(1)} ${py(p.y).toFixed(1)}`).join(' ');
    body.push(`<path d="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of s.points) body.push(`<circle cx="${px(p.x)}" cy="${py(p.y)}" r="3" fill="${color}"/>`);
    body.push(`<text x="${WIDTH - MARGIN.right + 10}" y="${MARGIN.top + 16 * i + 10}" fill="${color}">${escape(s.name)}</text>`);
  });
  return frame(title, xLabel, yLabel, body);
}

export function barChart(title: string, xLabel: string, yLabel: string, bars: { label: string; value: number }[]): string {
  const max = Math.max(...bars.map((b) => b.value), 1);
  const slot = (WIDTH - MARGIN.left - MARGIN.right) / bars.length;
  const bottom = HEIGHT - MARGIN.bottom;
  const scale = (HEIGHT - MARGIN.top - MARGIN.bottom) / max;
  const body = [`<line x1="${MARGIN.left}" y1="${bottom}" x2="${WIDTH - MARGIN.right}" y2="${bottom}" stroke="black"/>`];
  bars.forEach((b, i) => {
    const x = MARGIN.left + i * slot + slot * 0.15;
    const h = b.value * scale;
    body.push(`<rect x="${x.toFixed(1)}" y="${(bottom - h).toFixed(1)}" width="${(slot * 0.7).toFixed(1)}" ` +
      `height="${h.toFixed(1)}" fill="${COLORS[0]}"/>`);
    body.push(`<text x="${(x + slot * 0.35).toFixed(1)}" y="${bottom + 16}" text-anchor="middle">${escape(b.label)}</text>`);
    body.push(`<text x="${(x + slot * 0.35).toFixed(1)}" y="${(bottom - h - 4).toFixed(1)}" text-anchor="middle">` +
      `${b.value.toFixed(b.value < 1 ? 2 : 0)}</text>`);
  });
  return frame(title, xLabel, yLabel, body);
}
