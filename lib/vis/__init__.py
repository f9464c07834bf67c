"""Drawing shared by evaluation and the demo: the mesh renderer, video in and out, the image cameras and
the overlay writer (people drawn into video frames)."""
