from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.template import engines

FORM = engines["django"].from_string(
    '<form method="post">{% csrf_token %}<input name="name"><button>Send</button></form>')


def hello(request):
    return HttpResponse("hello from django, %s" % request.META.get("REMOTE_ADDR"))


def form(request):
    if request.method == "POST":
        return HttpResponse("thanks, %s" % request.POST.get("name", ""))
    get_token(request)
    return HttpResponse(FORM.render({}, request))
