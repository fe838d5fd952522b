from __future__ import annotations

from django.urls import path

from .views import alarms, dashboard, images, telemetry, uploads

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("api/rovers", dashboard.rover_list, name="rover-list"),
    path(
        "stream/rover-telemetry",
        telemetry.default_rover_telemetry_stream,
        name="rover-telemetry-stream-default",
    ),
    path(
        "rovers/<slug:slug>/telemetry/stream",
        telemetry.rover_telemetry_stream,
        name="rover-telemetry-stream",
    ),
    path(
        "api/rovers/<slug:slug>/telemetry",
        telemetry.telemetry_collection,
        name="rover-telemetry",
    ),
    path("api/rovers/<slug:slug>/alarms", alarms.rover_alarms, name="rover-alarms"),
    path(
        "api/alarms/<int:alarm_id>/acknowledge",
        alarms.alarm_acknowledge_view,
        name="alarm-acknowledge",
    ),
    path("stream/rover-image", images.rover_image_stream, name="rover-image-stream"),
    path("api/rovers/<slug:slug>/images", images.rover_images, name="rover-images"),
    path("api/images/<int:image_id>/download", images.image_download, name="image-download"),
    path("api/images/<int:image_id>/thumbnail", images.image_thumbnail, name="image-thumbnail"),
    path("api/rovers/<slug:slug>/uploads/", uploads.upload_collection, name="rover-uploads"),
    path(
        "api/rovers/<slug:slug>/uploads/<str:upload_id>",
        uploads.upload_resource,
        name="rover-upload",
    ),
]
