"""Media unlike tl_mcp.samples, for reviewing the offline answerers as an outside agent meets them.

`make_town_bulletin` writes a ~70 s "town bulletin": six topics with dates, prices and names, spoken by
espeak-ng at their own times, over pictures whose cuts do not line up with the sentences (two sentences
run across a cut), with one topic only on screen (over ~11 s of silence) and one only spoken (over a
picture with no text). No subtitle track, so what is said is known only from the audio. The returned
truth says where each sentence was spoken and where each picture starts, so tests judge answers against
it. `make_garden_podcast` writes an audio-only file of a few spoken sentences.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from tl_mcp.samples import AUDIO_RATE, load_font, mux_audio, read_wav

FPS = 8
SIZE = (480, 272)
DURATION = 70.0


@dataclass(frozen=True, slots=True)
class Said:
    start: float
    end: float
    text: str


@dataclass(frozen=True, slots=True)
class Picture:
    start: float
    #: Lines drawn on screen; empty for a picture with no text.
    lines: tuple[str, ...]
    colour: tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Bulletin:
    path: Path
    duration: float
    pictures: tuple[Picture, ...]
    said: tuple[Said, ...]

    def sentence(self, words: str) -> Said:
        return next(s for s in self.said if words.lower() in s.text.lower())


#: Cuts at odd times: the 2nd and 7th sentences run across one.
PICTURES = (
    Picture(0.0, ("HARBOUR FESTIVAL", "Lisbon"), (20, 40, 110)),
    Picture(9.3, (), (90, 60, 40)),
    Picture(21.7, ("RECALL NOTICE", "Kettle KX-40", "call 0800 555 123"), (200, 90, 0)),
    Picture(33.1, ("FERRY PASS",), (20, 110, 60)),
    Picture(47.6, (), (70, 70, 80)),
    Picture(58.2, ("GLASS MUSEUM", "Murano"), (110, 30, 120)),
)
#: (start, sentence). Nothing is said from 21.7 s to 33.1 s: the recall is only on screen. The
#: workshop (over the picture with no text) is only spoken.
SCRIPT = (
    (1.0, "The Lisbon harbour festival opens on March 14."),
    (7.6, "Tickets cost 18 euros at the gate."),
    (12.5, "Doctor Amara Osei will lead the workshop on solar kilns."),
    (17.0, "She has built kilns in Ghana since 2009."),
    (34.5, "A monthly ferry pass now costs 42 dollars."),
    (39.5, "The discount starts in July."),
    (45.8, "Mayor Ingrid Halvorsen signed the river treaty in 1998."),
    (52.5, "The treaty protects the salmon runs."),
    (59.5, "Next week we visit the glass museum in Murano."),
    (64.5, "Entry is free on Sundays."),
)
PODCAST = (
    (0.5, "Welcome to the garden hour with Priya Nair."),
    (4.5, "Plant garlic in late October."),
    (8.0, "A bag of compost costs 7 dollars at the market."),
)


def _speak(
    script: tuple[tuple[float, str], ...], total: float, workdir: Path
) -> tuple[npt.NDArray[np.float32], tuple[Said, ...]]:
    track = np.zeros(round(total * AUDIO_RATE), dtype=np.float32)
    said: list[Said] = []
    procs = []
    for i, (_, text) in enumerate(script):
        out = workdir / f"said{i}.wav"
        procs.append((out, subprocess.Popen(["espeak-ng", "-s", "160", "-w", str(out), text])))
    for (start, text), (out, proc) in zip(script, procs, strict=True):
        if proc.wait(timeout=30) != 0:
            raise RuntimeError(f"espeak-ng failed on {text!r}")
        samples = read_wav(out)
        begin = round(start * AUDIO_RATE)
        end = begin + len(samples)
        if (said and start < said[-1].end + 0.5) or end > len(track):
            raise ValueError(f"{text!r} ({len(samples) / AUDIO_RATE:.1f} s) overlaps its neighbour")
        track[begin:end] = 0.8 * samples
        said.append(Said(start, round(end / AUDIO_RATE, 3), text))
    return track, tuple(said)


def _picture(picture: Picture) -> npt.NDArray[np.uint8]:
    image = Image.new("RGB", SIZE, picture.colour)
    draw = ImageDraw.Draw(image)
    if not picture.lines:
        # Texture instead of text, so this picture still differs from a blank frame.
        stripe = tuple(min(255, c + 40) for c in picture.colour)
        for x in range(0, SIZE[0], 24):
            draw.line([(x, 0), (x + 60, SIZE[1])], fill=stripe, width=6)
    font = load_font(34)
    y = 40
    for line in picture.lines:
        width = draw.textlength(line, font=font)
        draw.text(((SIZE[0] - width) / 2, y), line, font=font, fill=(255, 255, 255))
        y += 60
    return np.asarray(image, dtype=np.uint8)


def make_town_bulletin(path: Path) -> Bulletin:
    workdir = path.parent / f"{path.stem}-speech"
    workdir.mkdir(exist_ok=True)
    audio, said = _speak(SCRIPT, DURATION, workdir)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height = SIZE
        video.pix_fmt = "yuv420p"
        video.options = {"preset": "ultrafast", "tune": "stillimage"}
        sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        ends = [p.start for p in PICTURES[1:]] + [DURATION]
        frame_no = 0
        for picture, end in zip(PICTURES, ends, strict=True):
            base = _picture(picture)
            while frame_no / FPS < end - 1e-9:
                pixels = base.copy()
                # A moving dot: frames within a picture differ a little, as in real footage.
                x = (frame_no * 7) % (SIZE[0] - 8)
                pixels[-12:-4, x : x + 8] = 255
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts = frame_no
                frame_no += 1
                container.mux(video.encode(frame))
        container.mux(video.encode(None))
        mux_audio(container, sound, audio)
    return Bulletin(path, DURATION, PICTURES, said)


def make_garden_podcast(path: Path) -> tuple[Said, ...]:
    """An audio-only M4A (AAC) of three sentences, ~12 s."""
    workdir = path.parent / f"{path.stem}-speech"
    workdir.mkdir(exist_ok=True)
    audio, said = _speak(PODCAST, 12.0, workdir)
    with av.open(str(path), "w", format="mp4") as container:
        mux_audio(container, container.add_stream("aac", rate=AUDIO_RATE, layout="mono"), audio)
    return said
