import Foundation
import MinewatchCore
import MinewatchEngine

/// An image exported from the engine: a docker-archive in a private temporary folder that lives
/// as long as this object.
public final class EngineImage {
    public let images: [DockerArchiveImage]
    let temp: PrivateTempDir

    public init(client: EngineClient, name: String, limit: Int64) throws(MinewatchError) {
        temp = try PrivateTempDir(label: "engine")
        let file = try temp.spool(try client.exportImage(name), name: "image.tar", limit: limit, what: "engine image \(name)")
        let index = try TarIndex(source: try FileByteSource(path: file))
        images = try DockerArchiveImage.load(store: index)
    }
}

