from workers import DurableObject, Response, handler


class LegacyCounter(DurableObject):
    async def on_fetch(self, request):
        count = (await self.ctx.storage.get("count") or 0) + 1
        await self.ctx.storage.put("count", count)
        return Response(str(count))


@handler
async def on_fetch(request, env):
    if request.url.endswith("/count"):
        return await env.COUNTER.getByName("one").fetch(request)
    return Response(f"{env.GREETING}, World!")
