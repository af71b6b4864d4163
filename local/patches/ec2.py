"""EC2 fidelity: interface groups and connection tracking, instance attributes and metadata
options, the console, snapshots that take time."""

from local import scenario

# A 1x1 JPEG: what GetConsoleScreenshot returns base64-encoded in ImageData.
TINY_JPEG = (
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////"
    "////////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQAB"
    "PxA="
)
# Each connection-tracking timeout's bounds in seconds (EC2 API reference,
# ConnectionTrackingSpecificationRequest).
TRACKING_BOUNDS = {"TcpEstablishedTimeout": (60, 432000), "UdpStreamTimeout": (60, 180),
                   "UdpTimeout": (30, 60)}


def patch_interface_groups():
    """moto reads a primary interface's groups as the union of its own and the instance's
    launch-time groups, so a swap never removes the old ones; AWS reads back exactly what was set.
    Setting the primary interface's groups also sets the instance's, as in AWS, and
    `ModifyInstanceAttribute Groups=` replaces the primary interface's groups instead of adding.
    """
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface, NetworkInterfaceBackend
    from moto.ec2.models.instances import InstanceBackend

    NetworkInterface.group_set = property(lambda self: list(self._group_set))

    original_modify_eni = NetworkInterfaceBackend.modify_network_interface_attribute

    def modify_network_interface_attribute(self, eni_id, group_ids, *args, **kwargs):
        original_modify_eni(self, eni_id, group_ids, *args, **kwargs)
        eni = self.get_network_interface(eni_id)
        if group_ids and eni.instance is not None and eni.instance.nics.get(0) is eni:
            eni.instance.security_groups = list(eni._group_set)

    NetworkInterfaceBackend.modify_network_interface_attribute = modify_network_interface_attribute

    original_modify_instance = InstanceBackend.modify_instance_security_groups

    def modify_instance_security_groups(self, instance_id, new_group_id_list):
        instance = original_modify_instance(self, instance_id, new_group_id_list)
        if 0 in instance.nics:
            instance.nics[0]._group_set = list(instance.security_groups)
        return instance

    InstanceBackend.modify_instance_security_groups = modify_instance_security_groups


def patch_connection_tracking():
    """moto accepts `ModifyNetworkInterfaceAttribute ConnectionTrackingSpecification=` and drops
    it. AWS refuses a timeout outside its bounds (`TRACKING_BOUNDS`), keeps the timeouts set per
    interface (each request changes the ones it names) and returns them as the interface's
    `ConnectionTrackingConfiguration` in DescribeNetworkInterfaces and DescribeInstances."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ec2.responses.elastic_network_interfaces import ElasticNetworkInterfaces

    NetworkInterface.connection_tracking_configuration = None  # until a request sets one

    original = ElasticNetworkInterfaces.modify_network_interface_attribute

    def modify_network_interface_attribute(self):
        given = self._get_param("ConnectionTrackingSpecification") or {}
        for name, value in given.items():
            low, high = TRACKING_BOUNDS[name]
            if not low <= int(value) <= high:
                raise EC2ClientError("InvalidParameterValue", f"The value {value} for {name} "
                                     f"is not between {low} and {high} seconds.")
        if given:
            self.error_on_dryrun()
            eni = self.ec2_backend.get_network_interface(self._get_param("NetworkInterfaceId"))
            eni.connection_tracking_configuration = {
                **(eni.connection_tracking_configuration or {}),
                **{name: int(value) for name, value in given.items()}}
        return original(self)

    ElasticNetworkInterfaces.modify_network_interface_attribute = (
        modify_network_interface_attribute)


def patch_instance_attributes():
    """moto ignores `ModifyInstanceAttribute InstanceInitiatedShutdownBehavior=` and, worse, falls
    through to its groups handler with no groups, wiping the instance's security groups. AWS sets
    the attribute and leaves the groups alone. moto's `DescribeInstanceAttribute
    Attribute=blockDeviceMapping` answers no mappings; AWS lists each volume's (its
    DeleteOnTermination among them)."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses.instances import InstanceResponse

    original_dot_value = InstanceResponse._dot_value_instance_attribute_handler
    original_groups = InstanceResponse._security_grp_instance_attribute_handler

    def dot_value(self):
        value = self._get_param("InstanceInitiatedShutdownBehavior.Value")
        if value is None:
            return original_dot_value(self)
        self.error_on_dryrun()
        self.ec2_backend.modify_instance_attribute(
            self._get_param("InstanceId"), "instance_initiated_shutdown_behavior", value)
        return True

    def groups(self):
        return bool(self._get_param("Groups", [])) and original_groups(self)

    original_describe = InstanceResponse.describe_instance_attribute

    def describe_instance_attribute(self):
        if self._get_param("Attribute") != "blockDeviceMapping":
            return original_describe(self)
        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        return ActionResult({"InstanceId": instance.id,
                             "BlockDeviceMappings": instance.block_device_mappings})

    InstanceResponse._dot_value_instance_attribute_handler = dot_value
    InstanceResponse._security_grp_instance_attribute_handler = groups
    InstanceResponse.describe_instance_attribute = describe_instance_attribute


def patch_metadata_options():
    """moto's `ModifyInstanceMetadataOptions` builds the instance's options afresh from the
    request, so every option the request does not name reads back absent or at its launch
    default (`HttpTokens=required` is lost when only the endpoint is set). AWS keeps the existing
    state of each option a request does not give (EC2 API reference)."""
    from moto.ec2.models.instances import InstanceBackend

    def modify_instance_metadata_options(self, instance_id, http_tokens=None, hop_limit=None,
                                         http_endpoint=None, dry_run=False, http_protocol=None,
                                         metadata_tags=None):
        options = self.get_instance(instance_id).metadata_options
        given = {"http_tokens": http_tokens, "http_put_response_hop_limit": hop_limit,
                 "http_endpoint": http_endpoint, "http_protocol_ipv6": http_protocol,
                 "instance_metadata_tags": metadata_tags}
        for name, value in given.items():
            if value is not None:
                setattr(options, name, value)
        return options

    InstanceBackend.modify_instance_metadata_options = modify_instance_metadata_options


def patch_console():
    """moto answers GetConsoleScreenshot with a 500; AWS returns a base64 JPEG."""
    from moto.ec2.responses.general import General

    def get_console_screenshot(self):
        from moto.core.responses import ActionResult

        instance = self.ec2_backend.get_instance(self._get_param("InstanceId"))
        return ActionResult({"InstanceId": instance.id, "ImageData": TINY_JPEG})

    General.get_console_screenshot = get_console_screenshot


def patch_snapshots():
    """moto completes snapshots at once and CreateSnapshots returns no State; in AWS a snapshot
    is `pending` for a while and every CreateSnapshots entry carries its State and Progress.
    How long is the scenario's (`local.scenario.hold_snapshots`)."""
    from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot

    original_init = Snapshot.__init__

    def __init__(self, *args, **kwargs):
        self._hold_polls = scenario.snapshot_hold["polls"]
        self._polls_seen = 0
        original_init(self, *args, **kwargs)

    def get_status(self):
        # describe_snapshots counts a poll before the response is rendered: poll n sees n.
        if self._hold_polls and self._polls_seen <= self._hold_polls:
            return "pending"
        return self._status

    def set_status(self, value):
        self._status = value

    Snapshot.__init__ = __init__
    Snapshot.status = property(get_status, set_status)
    Snapshot.state = property(get_status)
    Snapshot.progress = property(lambda self: "100%" if get_status(self) == "completed" else "0%")

    original_describe = EBSBackend.describe_snapshots

    def describe_snapshots(self, snapshot_ids=None, filters=None):
        matches = original_describe(self, snapshot_ids=snapshot_ids, filters=filters)
        for snapshot in matches:
            snapshot._polls_seen += 1
        return matches

    EBSBackend.describe_snapshots = describe_snapshots
