from django.urls import path

from pushsite import views

urlpatterns = [path("notify/", views.notify), path("anotify/", views.anotify)]
