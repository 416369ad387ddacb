// Session list (polled from /ws/sessions) and a three.js viewer of the selected session's GLB point cloud.
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';

const viewer = document.getElementById('viewer');
const info = document.getElementById('info');
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio);
viewer.appendChild(renderer.domElement);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x111111);
const camera = new THREE.PerspectiveCamera(60, 1, 0.01, 1000);
const controls = new OrbitControls(camera, renderer.domElement);
const loader = new GLTFLoader();
let model = null;
let selected = null;

function resize() {
  const { clientWidth: w, clientHeight: h } = viewer;
  renderer.setSize(w, h);
  camera.aspect = w / Math.max(1, h);
  camera.updateProjectionMatrix();
}
window.addEventListener('resize', resize);
resize();
renderer.setAnimationLoop(() => { controls.update(); renderer.render(scene, camera); });

async function show(session) {
  selected = session.session_id;
  info.textContent = `Loading ${session.session_id}…`;
  const gltf = await loader.loadAsync(`${session.model_url}?t=${Date.parse(session.last_activity)}`);
  if (model) scene.remove(model);
  model = gltf.scene;
  let points = 0;
  model.traverse((o) => {
    if (o.isPoints) {
      o.material.size = 2;
      o.material.sizeAttenuation = false;
      points += o.geometry.getAttribute('position').count;
    }
  });
  scene.add(model);
  // Look at the middle of the cloud from beside the capture position (the origin), so its depth shows.
  const box = new THREE.Box3().setFromObject(model);
  const centre = box.getCenter(new THREE.Vector3());
  const back = new THREE.Vector3().sub(centre).applyAxisAngle(new THREE.Vector3(0, 1, 0), Math.PI / 7);
  camera.position.copy(centre).addScaledVector(back, 1.6).add(new THREE.Vector3(0, back.length() * 0.3, 0));
  controls.target.copy(centre);
  camera.near = 0.01;
  camera.far = box.getSize(new THREE.Vector3()).length() * 10 + 10;
  camera.updateProjectionMatrix();
  controls.update();
  info.textContent = `${session.session_id}: ${points} points, ${session.num_images} images`;
  document.body.dataset.loaded = session.session_id;
  document.body.dataset.points = String(points);
  render(lastSessions);
}

let lastSessions = [];
function render(sessions) {
  lastSessions = sessions;
  document.getElementById('summary').textContent = `${sessions.length} session${sessions.length === 1 ? '' : 's'}`;
  const body = document.querySelector('#sessions tbody');
  body.replaceChildren(...sessions.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.session = s.session_id;
    if (s.has_model) { tr.className = 'selectable'; tr.onclick = () => show(s).catch(fail); }
    if (s.session_id === selected) tr.classList.add('selected');
    const cells = [s.session_id.slice(0, 8), s.status, `${s.num_images}/${s.max_images}`, s.has_model ? String(s.num_points) : '—',
      new Date(s.last_activity).toLocaleTimeString()];
    for (const [i, text] of cells.entries()) {
      const td = document.createElement('td');
      td.textContent = text;
      if (i === 1) td.className = `status-${s.status}`;
      tr.appendChild(td);
    }
    return tr;
  }));
}

function fail(err) { info.textContent = `Error: ${err.message}`; console.error(err); }

async function refresh() {
  const res = await fetch('/ws/sessions');
  const { sessions } = await res.json();
  render(sessions);
  // Show the newest model when nothing is selected yet (or ?session= names one).
  const wanted = new URLSearchParams(location.search).get('session');
  if (!selected) {
    const first = sessions.find((s) => s.has_model && (!wanted || s.session_id === wanted));
    if (first) await show(first);
  }
}
refresh().catch(fail);
setInterval(() => refresh().catch(fail), 3000);
