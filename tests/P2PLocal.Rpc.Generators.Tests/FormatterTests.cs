using MessagePack;
using P2PLocal.Rpc.Dispatch;
using P2PLocal.Rpc.Generators.Tests.Services;

namespace P2PLocal.Rpc.Generators.Tests;

/// <summary>
/// The formatters generated for [MessagePackObject] types: used ahead of MessagePack's dynamic ones, and strict at the
/// edge (issue 18: a short array was accepted with the missing member null, and poisoned the service later).
/// </summary>
public sealed class FormatterTests(ServedPair pair) : IClassFixture<ServedPair>
{
    private static KwargsWriter<object?[]?> PersonAs(string kwarg) => (ref MessagePackWriter writer, object?[]? fields, MessagePackSerializerOptions options) =>
    {
        writer.WriteMapHeader(1);
        writer.Write(kwarg);
        if (fields is null)
        {
            writer.Write("not an array");
            return;
        }

        writer.WriteArrayHeader(fields.Length);
        foreach (var field in fields)
            MessagePackSerializer.Serialize(ref writer, field, options);
    };

    private Task<string> IntroduceRawAsync(object?[]? fields) =>
        pair.Alice.Peers.Client("bob").InvokeAsync("Introduce", fields, PersonAs("person"), GeneratedResults.Reader<string>()).AsTask().Within();

    [Fact]
    public void The_generated_formatters_are_asked_first_and_come_from_the_contract_assembly()
    {
        foreach (var formatter in new object?[]
        {
            pair.Bob.SerializerOptions.Resolver.GetFormatter<Person>(),
            pair.Bob.SerializerOptions.Resolver.GetFormatter<Point>(),
            pair.Bob.SerializerOptions.Resolver.GetFormatter<Forecast>(),
        })
        {
            Assert.NotNull(formatter);
            Assert.Equal(typeof(Calculator).Assembly, formatter.GetType().Assembly);
        }

        Assert.Equal(typeof(Calculator).Assembly, ServiceRegistry.GeneratedResolver.GetFormatter<List<Person>>()!.GetType().GetGenericArguments()[0].Assembly);
    }

    [Fact]
    public async Task MessagePack_objects_in_arrays_lists_and_dictionaries_round_trip_through_the_generated_formatters()
    {
        var people = new[] { new Person { Name = "Ann", Age = 3, City = "x" }, new Person { Name = "Bo", Age = 5, City = "y", Nickname = "b" } };
        var family = await Task.Run(() => pair.Proxy.Family(people, new() { ["Ann"] = Direction.North, ["Bo"] = Direction.West })).Within();
        Assert.Equal(["North", "West"], family.Select(p => p.City));
        Assert.Equal([null, "b"], family.Select(p => p.Nickname));
        Assert.Equal("ANN 3 4 -", await Task.Run(() => pair.Proxy.Introduce(new Person { Name = "Ann", Age = 3, City = "Oslo" })).Within());
    }

    [Fact]
    public async Task A_short_array_missing_a_non_nullable_member_is_invalid_kwargs_naming_the_member()
    {
        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() => IntroduceRawAsync(["Ann", 3]));
        Assert.Contains("Kwarg 'person' of 'Introduce'", error.Message, StringComparison.Ordinal);
        Assert.Contains("Member 'City' of P2PLocal.Rpc.Generators.Tests.Services.Person (key 2) is missing", error.Message, StringComparison.Ordinal);

        // The service was not poisoned: a whole object still works.
        Assert.Equal("ANN 3 4 -", await IntroduceRawAsync(["Ann", 3, "Oslo"]));
    }

    [Fact]
    public async Task A_nullable_member_may_be_left_out_and_a_long_array_from_a_newer_sender_is_read_up_to_what_this_version_knows()
    {
        Assert.Equal("ANN 3 4 -", await IntroduceRawAsync(["Ann", 3, "Oslo"]));
        Assert.Equal("ANN 3 4 al", await IntroduceRawAsync(["Ann", 3, "Oslo", "al", "a field of a newer version", new[] { 1, 2 }]));
    }

    [Theory]
    [InlineData(new object?[] { "Ann", "three", "Oslo" }, "Member 'Age' of P2PLocal.Rpc.Generators.Tests.Services.Person")]
    [InlineData(new object?[] { "Ann", 3, null }, "Member 'City' of P2PLocal.Rpc.Generators.Tests.Services.Person is nil")]
    [InlineData(new object?[] { null, 3, "Oslo" }, "Member 'Name' of P2PLocal.Rpc.Generators.Tests.Services.Person is nil")]
    [InlineData(new object?[] { 1, 3, "Oslo" }, "Member 'Name' of P2PLocal.Rpc.Generators.Tests.Services.Person")]
    [InlineData(null, "is sent as an array of its members, not String")]
    public async Task A_wrongly_typed_or_nil_member_is_invalid_kwargs_naming_the_member(object?[]? fields, string expected)
    {
        var error = await Assert.ThrowsAsync<InvalidKwargsException>(() => IntroduceRawAsync(fields));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_integral_float_member_binds_to_an_int_member_as_for_kwargs()
    {
        Assert.Equal("ANN 3 4 -", await IntroduceRawAsync(["Ann", 3.0, "Oslo"]));
    }
}
