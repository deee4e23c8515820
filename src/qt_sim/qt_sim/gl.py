"""Pick a headless OpenGL backend for MuJoCo before MuJoCo is imported.

MuJoCo and PyOpenGL choose their GL platform once, at import, from ``MUJOCO_GL`` /
``PYOPENGL_PLATFORM``; a failed EGL attempt cannot be undone in the same process. So EGL is
probed here with plain ctypes calls (no PyOpenGL import) and, if no EGL display initialises,
both variables are switched to OSMesa before anything imports ``mujoco``.

env.sh sets ``MUJOCO_GL=egl``. A backend the user named explicitly other than egl is respected.
Note: an EGL context is bound to the thread that created it, so a process must render on one
thread only (the driver node gives the simulation its own thread for that reason).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_EGL_PLATFORM_DEVICE_EXT = 0x313F
_EGL_TRUE = 1
_chosen: str | None = None


def _egl_works() -> bool:
    """True if libEGL can open and initialise a display on some device (e.g. Mesa llvmpipe)."""
    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        egl = ctypes.CDLL(name)
    except OSError:
        return False
    get_proc = egl.eglGetProcAddress
    get_proc.restype = ctypes.c_void_p
    get_proc.argtypes = [ctypes.c_char_p]
    query_devices_ptr = get_proc(b"eglQueryDevicesEXT")
    platform_display_ptr = get_proc(b"eglGetPlatformDisplayEXT")
    if not query_devices_ptr or not platform_display_ptr:
        return False
    query_devices = ctypes.CFUNCTYPE(
        ctypes.c_uint, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int)
    )(query_devices_ptr)
    platform_display = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p)(
        platform_display_ptr
    )
    devices = (ctypes.c_void_p * 8)()
    count = ctypes.c_int(0)
    if query_devices(8, devices, ctypes.byref(count)) != _EGL_TRUE:
        return False
    egl.eglInitialize.restype = ctypes.c_uint
    egl.eglInitialize.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    egl.eglTerminate.argtypes = [ctypes.c_void_p]
    for i in range(count.value):
        display = platform_display(_EGL_PLATFORM_DEVICE_EXT, devices[i], None)
        if display and egl.eglInitialize(display, None, None) == _EGL_TRUE:
            egl.eglTerminate(display)
            return True
    return False


def select_gl_backend() -> str:
    """Set MUJOCO_GL / PYOPENGL_PLATFORM to a working headless backend and return its name.

    Call before the first ``import mujoco`` (qt_sim.render does). Idempotent; once mujoco is
    imported the choice is fixed and simply reported.
    """
    global _chosen
    if _chosen is not None:
        return _chosen
    requested = os.environ.get("MUJOCO_GL", "").strip().lower()
    if "mujoco" in sys.modules:
        _chosen = requested or "glfw"
        return _chosen
    if requested in ("", "egl"):
        backend = "egl" if _egl_works() else "osmesa"
        if backend != "egl" and requested == "egl":
            print("qt_sim: EGL unavailable, rendering with OSMesa instead", file=sys.stderr)
    else:
        backend = requested
    os.environ["MUJOCO_GL"] = backend
    if backend in ("egl", "osmesa"):
        os.environ["PYOPENGL_PLATFORM"] = backend
    _chosen = backend
    return backend
