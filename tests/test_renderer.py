"""Renderer: coverage of known areas, depth order between meshes, official camera, shading, exports."""
import numpy as np
import pytest
import torch

from lib.utils.geometry import convert_crop_cam_to_orig_img
from lib.vis.overlay import Figure, OverlayWriter
from lib.vis.renderer import Mesh, MeshRenderer, paint, project, rasterize, track_color, write_obj
from lib.vis.video import FrameReader

W, H = 64, 48
SQUARE_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def square(half=0.5, z=0.0, cx=0.0, cy=0.0):
    """A square in the SMPL frame (x right, y down, z away from the camera)."""
    return np.array([[cx - half, cy - half, z], [cx + half, cy - half, z],
                     [cx + half, cy + half, z], [cx - half, cy + half, z]])


# sx = 0.5 -> 16 px per metre horizontally (W/2 * sx); sy = 2/3 -> 16 px per metre vertically.
CAM = np.array([0.5, 0.5 * W / H, 0.0, 0.0])


def test_projection_matches_the_official_camera():
    # u = (1 + sx (X + tx)) W/2, v = (1 + sy (Y + ty)) H/2, i.e. SMPL y points down in the image.
    uv, depth = project(np.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.2]]), np.array([0.5, 0.25, 0.2, -0.4]), W, H)
    np.testing.assert_allclose(uv, [[(1 + 0.5 * 0.2) * 32, (1 - 0.25 * 0.4) * 24],
                                    [(1 + 0.5 * 1.2) * 32, (1 + 0.25 * 0.1) * 24]])
    distance = 2 * 64 / (0.5 * 64)
    np.testing.assert_allclose(depth, [distance, distance + 0.2])  # larger SMPL z = farther


def test_orig_cam_puts_the_crop_projection_on_the_box():
    # A crop camera (s, tx, ty) places X at cx + h/2 * s (X + tx) in the frame (h: scaled box side).
    crop = np.array([[0.9, 0.1, -0.2]])
    bbox = np.array([[100.0, 70.0, 120.0, 120.0]])
    orig = convert_crop_cam_to_orig_img(torch.tensor(crop), torch.tensor(bbox), 320, 240).numpy()[0]
    point = np.array([[0.3, -0.4, 0.0]])
    uv, _ = project(point, orig, 320, 240)
    np.testing.assert_allclose(uv[0], [100 + 60 * 0.9 * (0.3 + 0.1), 70 + 60 * 0.9 * (-0.4 - 0.2)], atol=1e-9)


def test_square_fills_exactly_its_pixels():
    uv, depth = project(square(), CAM, W, H)
    np.testing.assert_allclose(uv, [[24, 16], [40, 16], [40, 32], [24, 32]])
    face_id, zbuf = rasterize(uv, depth, SQUARE_FACES, W, H)
    covered = face_id >= 0
    expected = np.zeros((H, W), bool)
    expected[16:32, 24:40] = True
    np.testing.assert_array_equal(covered, expected)
    assert np.isinf(zbuf[~covered]).all() and np.allclose(zbuf[covered], depth[0])
    # The diagonal (0,0)-(1,1) in pixel units splits the square between the two faces.
    assert face_id[16, 39] == 0 and face_id[31, 24] == 1
    # Painter's mode covers the same block up to OpenCV's inclusive edges.
    painted = paint(uv, depth, SQUARE_FACES, W, H) >= 0
    assert painted[expected].all() and painted.sum() <= 17 * 17


def test_render_colour_shading_and_alpha():
    white = np.full((H, W, 3), 255, np.uint8)
    out = MeshRenderer(SQUARE_FACES, W, H).render(white, [Mesh(square(), CAM, (1.0, 0.0, 0.0))])
    # Facing the viewer: ambient 0.3 + lights 0.6 * 0.857 + 0.3 * 0.742 > 1, clipped: pure red (BGR).
    assert (out[16:32, 24:40] == [0, 0, 255]).all()
    assert (out[:16] == 255).all() and (out[:, :24] == 255).all()
    half = MeshRenderer(SQUARE_FACES, W, H, alpha=0.5).render(white, [Mesh(square(), CAM, (1.0, 0.0, 0.0))])
    assert (half[20, 30] == [128, 128, 255]).all()
    # Tilting the square 60 degrees about y darkens it: Lambert with the fixed lights.
    c, s = np.cos(np.radians(60)), np.sin(np.radians(60))
    tilted = square() @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]).T
    dark = MeshRenderer(SQUARE_FACES, W, H).render(white, [Mesh(tilted, CAM, (1.0, 1.0, 1.0))])
    assert 0 < dark[24, 32, 0] < 255


@pytest.mark.parametrize('mode', ['zbuffer', 'painter'])
def test_depth_order_of_two_meshes(mode):
    renderer = MeshRenderer(SQUARE_FACES, W, H, mode=mode)
    black = np.zeros((H, W, 3), np.uint8)
    far = Mesh(square(z=0.3), CAM, (1.0, 0.0, 0.0))
    near = Mesh(square(half=0.25, z=-0.3, cx=0.5), CAM, (0.0, 1.0, 0.0))
    for order in ([far, near], [near, far]):
        out = renderer.render(black, order)
        assert (out[24, 38] == [0, 255, 0]).all()   # overlap: the nearer (green) square
        assert (out[24, 26] == [0, 0, 255]).all()   # red only
        assert (out[24, 42] == [0, 255, 0]).all()   # green only
    # Between people, the larger camera scale is nearer (the official demo's ordering).
    big = Mesh(square(half=0.3), CAM * [1.5, 1.5, 1, 1], (0.0, 0.0, 1.0))
    for order in ([far, big], [big, far]):
        assert (renderer.render(black, order)[24, 32] == [255, 0, 0]).all()


def test_two_intersecting_meshes_resolve_per_pixel():
    # Two squares crossing each other (tilted in opposite directions): each is in front on one side.
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    a = Mesh(square() @ rot, CAM, (1.0, 0.0, 0.0))
    b = Mesh(square() @ rot.T, CAM, (0.0, 1.0, 0.0))
    out = MeshRenderer(SQUARE_FACES, W, H).render(np.zeros((H, W, 3), np.uint8), [a, b])
    left, right = out[24, 28], out[24, 36]
    assert left.argmax() != right.argmax() and {left.argmax(), right.argmax()} == {1, 2}


def test_side_view_and_wireframe():
    # A square in the y-z plane is edge-on from the front and visible from the side.
    plane = np.array([[0, -0.5, -0.5], [0, -0.5, 0.5], [0, 0.5, 0.5], [0, 0.5, -0.5]], float)
    renderer = MeshRenderer(SQUARE_FACES, W, H)
    black = np.zeros((H, W, 3), np.uint8)
    front = renderer.render(black, [Mesh(plane, CAM, (1, 1, 1))])
    side = renderer.render(black, [Mesh(plane, CAM, (1, 1, 1))], side_view=True)
    assert (front > 0).any(axis=2).sum() == 0
    assert (side > 0).any(axis=2).sum() == 256
    wire = MeshRenderer(SQUARE_FACES, W, H, wireframe=True).render(black, [Mesh(square(), CAM, (1, 1, 1))])
    drawn = (wire > 0).any(axis=2)
    assert drawn[16, 30] and drawn[24, 24] and not drawn[20, 36]   # edges drawn, interior left alone


def test_track_colours_and_obj_export(tmp_path):
    assert track_color(1) != track_color(2) and track_color(3) == track_color(3)
    verts = square(z=0.2)
    write_obj(tmp_path / 'm' / 'a.obj', verts, SQUARE_FACES)
    lines = (tmp_path / 'm' / 'a.obj').read_text().splitlines()
    assert lines[0] == 'v -0.500000 0.500000 -0.200000'   # rotated 180 degrees about x, as official
    assert lines[4:] == ['f 1 2 3', 'f 1 3 4']
    assert [p.name for p in (tmp_path / 'm').iterdir()] == ['a.obj']


def test_overlay_writer_holds_the_last_image_over_skipped_frames(tmp_path):
    """The online mode's overlay at stride k: the frames it did not process hold the last drawn image, so the
    video keeps the source's timing (one image per source frame)."""
    white, black = np.full((H, W, 3), 255, np.uint8), np.zeros((H, W, 3), np.uint8)
    path = tmp_path / 'overlay.mp4'
    with OverlayWriter(path, SQUARE_FACES, W, H, 10.0) as writer:
        writer.repeat_last(2)                                # nothing drawn yet: nothing to hold
        writer.write(white, [Figure(square(), CAM, (1.0, 0.0, 0.0))])
        writer.repeat_last(2)
        writer.write(black, [])
    frames = list(FrameReader(path))
    assert len(frames) == 4
    means = [f.astype(float).mean() for f in frames]
    assert abs(means[0] - means[1]) < 2 and abs(means[1] - means[2]) < 2 and means[3] < 10 < means[0]
