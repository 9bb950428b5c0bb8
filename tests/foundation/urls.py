"""A test-only echo endpoint so the error shape can be checked independently of any app."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as project_urlpatterns


class EchoSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=10)


class EchoView(APIView):
    def post(self, request):
        data = EchoSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(data.validated_data)


urlpatterns = [path("api/v1/echo", EchoView.as_view()), path("", include(project_urlpatterns))]
