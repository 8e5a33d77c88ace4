export default function Page() {
  return <p>bench</p>;
}
