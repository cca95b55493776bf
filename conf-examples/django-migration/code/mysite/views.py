from django.http import HttpResponse
from django.template import engines

CONTACT = engines["django"].from_string(
    '<form method="post">{% csrf_token %}<input name="email"><button>Send</button></form>')


def index(request):
    return HttpResponse("Hello from Django on fc-gateway")


def contact(request):
    if request.method == "POST":
        return HttpResponse("thanks, %s" % request.POST.get("email", ""))
    return HttpResponse(CONTACT.render({}, request))
