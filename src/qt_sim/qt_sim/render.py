"""Fixed-camera RGB rendering of the scene, tuned for a software renderer.

Shadows, reflections, skybox and multisampling are switched off: on Mesa's CPU rasteriser
they cost most of the frame time and add nothing a 96 px policy image needs.
"""

from __future__ import annotations

import atexit
import contextlib
import weakref

from qt_sim.gl import select_gl_backend

select_gl_backend()

import mujoco  # noqa: E402  (the GL backend must be chosen before this import)
import numpy as np  # noqa: E402

MAX_SIDE = 4096
_LIVE: weakref.WeakSet[CameraRenderer] = weakref.WeakSet()


@atexit.register
def _close_live_renderers() -> None:
    """Free GL resources before interpreter teardown (a renderer left open by its owner would
    otherwise be freed by __del__ after OpenGL's Python modules are gone)."""
    for renderer in list(_LIVE):
        with contextlib.suppress(Exception):
            renderer.close()


class CameraRenderer:
    """Renders one named camera of a model to HxWx3 uint8 frames.

    Create, use and close it on one thread (EGL contexts are bound to their creating thread).
    """

    def __init__(self, model: mujoco.MjModel, camera: str, width: int, height: int):
        if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
            raise ValueError(f"camera size: expected 1..{MAX_SIDE} px per side, got {width}x{height}")
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            raise ValueError(f"camera: no camera named {camera!r} in the model")
        # The offscreen buffer must hold the frame; multisampling stays off.
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, height)
        model.vis.quality.offsamples = 0
        self.width, self.height, self.camera = width, height, camera
        self._renderer = mujoco.Renderer(model, height=height, width=width, max_geom=200)
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
        flags[mujoco.mjtRndFlag.mjRND_FOG] = False
        self._option = mujoco.MjvOption()
        # Only groups 0-2 (scene, visual arm, collision geoms); group 3 holds helper sites.
        self._option.sitegroup[:] = 0
        _LIVE.add(self)

    def render(self, data: mujoco.MjData, out: np.ndarray | None = None) -> np.ndarray:
        """The current frame as a fresh (or the given) HxWx3 uint8 array."""
        self._renderer.update_scene(data, camera=self.camera, scene_option=self._option)
        return self._renderer.render(out=out)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __del__(self) -> None:  # best effort; explicit close() is the contract
        with contextlib.suppress(Exception):  # interpreter shutdown: GL may already be gone
            self.close()
