"""A tiny live loss curve: a QWidget painting a polyline with QPainter (no plotting dependency)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

MAX_POINTS = 2000


class LossPlot(QWidget):
    """Loss against step; dashed vertical lines mark where a warm-started run began."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._points: list[tuple[float, float]] = []
        self._runs: list[float] = []
        self.setMinimumHeight(70)
        self.setMaximumHeight(110)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip("Training loss (smoothed) against step; dashed lines mark where training was started again")

    # --- data -----------------------------------------------------------------------------------

    def clear(self) -> None:
        self._points.clear()
        self._runs.clear()
        self.update()

    def start_run(self, step: float) -> None:
        if self._points:
            self._runs.append(step)
        self.update()

    def add(self, step: float, loss: float) -> None:
        if not math.isfinite(loss):
            return
        self._points.append((float(step), float(loss)))
        if len(self._points) > MAX_POINTS:  # keep every other point: the curve's shape stays
            self._points = self._points[::2]
        self.update()

    @property
    def points(self) -> list[tuple[float, float]]:
        return list(self._points)

    # --- painting ---------------------------------------------------------------------------------

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        palette = self.palette()
        fg = palette.color(palette.WindowText)
        rect = QRectF(self.rect()).adjusted(44, 6, -6, -14)
        painter.setPen(QPen(QColor(fg.red(), fg.green(), fg.blue(), 90), 1))
        painter.drawRect(rect)
        font = painter.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.75))
        painter.setFont(font)
        if len(self._points) < 2:
            painter.setPen(fg)
            painter.drawText(rect, Qt.AlignCenter, "loss curve appears while training")
            return
        steps = [p[0] for p in self._points]
        losses = [p[1] for p in self._points]
        x0, x1 = min(steps), max(steps)
        y0, y1 = min(losses), max(losses)
        if y1 - y0 < 1e-9:
            y0, y1 = y0 - 0.5, y1 + 0.5
        if x1 - x0 < 1e-9:
            x1 = x0 + 1

        def to_px(x: float, y: float) -> QPointF:
            return QPointF(
                rect.left() + (x - x0) / (x1 - x0) * rect.width(),
                rect.bottom() - (y - y0) / (y1 - y0) * rect.height(),
            )

        dash = QPen(QColor(fg.red(), fg.green(), fg.blue(), 120), 1, Qt.DashLine)
        painter.setPen(dash)
        for step in self._runs:
            top, bottom = to_px(step, y1), to_px(step, y0)
            painter.drawLine(top, bottom)
        painter.setPen(QPen(QColor(255, 170, 40), 1.6))
        painter.drawPolyline(QPolygonF([to_px(x, y) for x, y in self._points]))
        painter.setPen(fg)
        painter.drawText(QRectF(0, rect.top() - 4, 41, 14), Qt.AlignRight, f"{y1:.3g}")
        painter.drawText(QRectF(0, rect.bottom() - 10, 41, 14), Qt.AlignRight, f"{y0:.3g}")
        painter.drawText(QRectF(rect.left(), rect.bottom() + 1, rect.width(), 13), Qt.AlignLeft, f"step {x0:.0f}")
        painter.drawText(QRectF(rect.left(), rect.bottom() + 1, rect.width(), 13), Qt.AlignRight, f"{x1:.0f}")
