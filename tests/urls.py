"""URLs of the test project: none are needed, the middleware is driven directly."""

urlpatterns: list[object] = []
