"""Bar charts as server-rendered SVG: the geometry, computed here, drawn by a template.

No script and no inline style (the console's Content-Security-Policy allows neither):
bars are `<rect>` elements with presentation attributes and a class that
static/css/charts.css colours, each inside a link to what it counts. Every chart comes
with the table it is drawn from (`relay/_chart.html`), for screen readers and tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WIDTH = 720
PLOT_HEIGHT = 160
TOP = 8  # room above the highest tick label
LEFT = 44  # room for the y axis labels
BOTTOM = 20  # room for the x axis labels
X_LABELS = 6  # about this many bucket labels under the bars


@dataclass
class Cell:
    value: int
    href: str


@dataclass
class Series:
    name: str  # the counter: "delivered"
    label: str  # "Delivered"
    css: str  # "series-delivered"


@dataclass
class Row:
    """One bucket of a chart: its label and one cell per series."""

    label: str
    cells: list[Cell]

    @property
    def total(self) -> int:
        return sum(c.value for c in self.cells)


def num(value: float) -> str:
    """An SVG coordinate: one decimal at most, no locale (the template prints it as is)."""
    return f"{round(value, 1):g}"


@dataclass
class Bar:
    x: str
    y: str
    width: str
    height: str
    css: str
    title: str
    href: str


@dataclass
class Tick:
    y: str
    label: str


@dataclass
class XLabel:
    x: str
    label: str


@dataclass
class Chart:
    key: str  # the id prefix in the page: "chart-recipients"
    title: str
    unit: str  # what the numbers count: "messages"
    series: list[Series]
    rows: list[Row]
    bars: list[Bar] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    x_labels: list[XLabel] = field(default_factory=list)
    width: int = WIDTH
    height: int = TOP + PLOT_HEIGHT + BOTTOM
    left: int = LEFT
    baseline: float = TOP + PLOT_HEIGHT

    @property
    def total(self) -> int:
        return sum(r.total for r in self.rows)


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 × 10^k at or above `value` (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if value <= m * step:
                return m * step
        step *= 10


def layout(chart: Chart) -> Chart:
    """Fill in the bars (stacked, first series at the bottom), the y ticks and the x
    labels of `chart` from its rows."""
    top = nice_ceiling(max((r.total for r in chart.rows), default=0))
    scale = PLOT_HEIGHT / top
    n = max(len(chart.rows), 1)
    slot = (chart.width - LEFT) / n
    gap = min(slot * 0.2, 6.0)
    chart.bars, chart.ticks, chart.x_labels = [], [], []
    for i, row in enumerate(chart.rows):
        x = LEFT + i * slot + gap / 2
        y = chart.baseline
        for series, cell in zip(chart.series, row.cells, strict=True):
            if not cell.value:
                continue
            height = cell.value * scale
            y -= height
            chart.bars.append(Bar(num(x), num(y), num(slot - gap), num(height), series.css,
                                  f"{row.label}: {cell.value} {series.label.lower()}", cell.href))
    divisions = 5 if top >= 5 else top  # top is 1, 2, 5, 10, 20, 50…: whole steps
    for k in range(divisions + 1):
        value = top * k // divisions
        chart.ticks.append(Tick(num(chart.baseline - value * scale), f"{value:,}"))
    every = max(1, round(n / X_LABELS))
    for i in range(0, len(chart.rows), every):
        chart.x_labels.append(XLabel(num(LEFT + i * slot), chart.rows[i].label))
    return chart
