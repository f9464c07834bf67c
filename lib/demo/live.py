"""Live frame sources of the online mode: a camera, a stream URL or a video file read as if live.

:class:`lib.vis.video.StreamSource` opens the source and checks that a frame can be read;
:class:`LatestFrame` reads it on its own thread and publishes frames into a one-frame slot that the
processing takes from, so the processing always gets the newest frame and nothing queues up:

- only every ``stride``-th frame is published (one uniform stride, set by the processing side with
  :meth:`LatestFrame.set_stride`); the frames in between are grabbed but not decoded;
- a published frame that is replaced before the processing took it is counted in ``dropped`` (the processing
  fell behind at the current stride);
- ``realtime``: a video file is paced at its own frame rate (frame ``i`` arrives ``i / fps`` seconds after the
  first), which is how the mode is tested; cameras and URLs pace themselves;
- ``lossless``: the reader waits until the previous frame was taken (a file read as fast as it is processed;
  nothing is dropped, the stride stays 1).

Each frame carries its true frame number in the source and its arrival time (``time.perf_counter()``).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from lib.vis.video import StreamSource


@dataclass
class Arrival:
    """One published frame: its number in the source (0-based), arrival time (``time.perf_counter()``
    seconds), image ``(H, W, 3)`` uint8 BGR, and the stride it was published at."""

    index: int
    time: float
    image: np.ndarray
    stride: int = 1


class LatestFrame:
    """The reader thread of a :class:`StreamSource` and its one-frame slot (module docstring). Take frames
    with :meth:`get` until it returns None (the source ended or :meth:`close` was called); ``read`` counts
    the frames read, ``dropped`` the published frames replaced before they were taken."""

    def __init__(self, source: StreamSource, realtime: bool = False, lossless: bool = False):
        self.source = source
        self.realtime, self.lossless = realtime, lossless
        self.stride = 1
        self.read = 0
        self.dropped = 0
        self._changed = threading.Condition()
        self._slot: Arrival | None = None
        self._last = -1             # number of the last published frame
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='stream-reader', daemon=True)
        self._thread.start()

    def set_stride(self, stride: int) -> None:
        """Publish every ``stride``-th frame from now on (counted from the last published one)."""
        with self._changed:
            self.stride = int(stride)

    def get(self) -> Arrival | None:
        """The newest published frame not taken yet, waiting for one; None once the source has ended."""
        with self._changed:
            while self._slot is None and not self._ended:
                self._changed.wait()
            if self._error is not None:
                raise self._error
            arrival, self._slot = self._slot, None
            self._changed.notify_all()
            return arrival

    def close(self) -> None:
        """Stop the reader thread and release the source."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join()
        self.source.close()

    def _run(self) -> None:
        capture, fps = self.source.capture, self.source.fps
        start = time.perf_counter()
        try:
            image, index = self.source.first, 0
            while not self._stop.is_set():
                if index > 0 and not capture.grab():
                    break
                if self.realtime and self._stop.wait(max(0.0, start + index / fps - time.perf_counter())):
                    break
                self.read += 1
                with self._changed:
                    stride = self.stride
                    publish = index >= self._last + stride
                if publish:
                    if index > 0:
                        ok, image = capture.retrieve()
                        if not ok:
                            break
                    self._publish(Arrival(index, time.perf_counter(), image, stride))
                index += 1
        except BaseException as err:  # handed to the processing thread, which raises it
            self._error = err
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def _publish(self, arrival: Arrival) -> None:
        with self._changed:
            while self.lossless and self._slot is not None and not self._stop.is_set():
                self._changed.wait()
            if self._slot is not None:
                self.dropped += 1
            self._slot, self._last = arrival, arrival.index
            self._changed.notify_all()
